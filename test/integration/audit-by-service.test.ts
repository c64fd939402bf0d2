/**
 * Issue 14: the audit trail of one service account, in one place. `GET /v1/admin/events?service=`
 * (an id or the service's name) in both of its modes, and the live stream: the backend's events about
 * that service, none of another's, and not a console's event that claims to be about it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { assertError, startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import {
  enrolService,
  requestServiceToken,
  serviceKey,
  type EnrolledService,
} from '../helpers/service-account-fixtures.js';

const PAYMENTS = 'urn:bank:payments';

describe('the audit trail of one service account (?service=)', () => {
  let t: TestBackend;
  let nightly: EnrolledService;
  let hr: EnrolledService;
  let kiosk: TestConsole;

  before(async () => {
    t = await startTestBackend();
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    const appKey = await serviceKey();
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [
        {
          audience: PAYMENTS,
          name: 'Payments',
          actions: ['customer.view'],
          revocationKey: appKey.publicJwk as { kty: 'EC'; crv: 'P-256'; x: string; y: string },
        },
      ],
      service: { actions: { 'customer.view': { actor: 'none' } } },
    };
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
    nightly = await enrolService(t, 'Nightly report', ['customer.view']);
    hr = await enrolService(t, 'HR sync', ['customer.view']);
    for (const service of [nightly, hr, nightly]) {
      const issued = await requestServiceToken(t, service, PAYMENTS, 'customer.view');
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
    }
    // A console's own event that names the nightly service: its claim, not the backend's fact.
    kiosk = await TestConsole.enrol(t.url, t.admin);
    const socket = await kiosk.connect();
    try {
      const claim = kiosk.nextEvent({ subject: { console: kiosk.id, service: nightly.id } });
      socket.send({ type: 'events', events: [claim] });
      await socket.next('events-ack', (m) => m.upToSeq >= claim.seq);
    } finally {
      socket.ws.close();
    }
  });
  after(async () => {
    await t?.stop();
  });

  const types = (events: Json[]) => events.map((e) => e.type as string);

  it('answers the backend’s events about that service and nothing else, oldest first (after mode), by id or name', async () => {
    const byId = (await t.admin.ok('GET', `/v1/admin/events?service=${nightly.id}&limit=1000`)) as Json;
    assert.deepEqual(types(byId.events), ['service-enrolled', 'service-token-issued', 'service-token-issued']);
    assert.ok(byId.events.every((e: Json) => e.subject.service === nightly.id && e.origin === 'backend'));
    const byName = (await t.admin.ok(
      'GET',
      `/v1/admin/events?service=${encodeURIComponent('nightly REPORT')}`,
    )) as Json;
    assert.deepEqual(
      byName.events.map((e: Json) => e.cursor),
      byId.events.map((e: Json) => e.cursor),
    );
    // Paging on `after` continues where the last call stopped.
    const first = byId.events[0].cursor as number;
    const rest = (await t.admin.ok('GET', `/v1/admin/events?service=${nightly.id}&after=${first}`)) as Json;
    assert.deepEqual(types(rest.events), ['service-token-issued', 'service-token-issued']);
    const other = (await t.admin.ok('GET', `/v1/admin/events?service=${hr.id}`)) as Json;
    assert.deepEqual(types(other.events), ['service-enrolled', 'service-token-issued']);
    // The console's claim is stored (evidence) but is not the service's trail.
    const fromKiosk = (await t.admin.ok('GET', `/v1/admin/events?origin=${kiosk.id}`)) as Json;
    assert.ok(fromKiosk.events.some((e: Json) => e.subject.service === nightly.id));
  });

  it('pages them newest first with the service’s name (list mode), by id or name', async () => {
    const page = (await t.admin.ok('GET', `/v1/admin/events?service=${nightly.id}&sort=received&limit=2`)) as Json;
    assert.deepEqual(types(page.events), ['service-token-issued', 'service-token-issued']);
    assert.ok(page.events[0].cursor > page.events[1].cursor);
    assert.equal(page.names.services[nightly.id], 'Nightly report');
    assert.equal(page.names.services[hr.id], undefined, 'only the services the page shows');
    const next = (await t.admin.ok(
      'GET',
      `/v1/admin/events?service=${nightly.id}&sort=received&limit=2&cursor=${encodeURIComponent(page.page.next)}`,
    )) as Json;
    assert.deepEqual(types(next.events), ['service-enrolled']);
    assert.equal(next.page.next, null);
    const byName = (await t.admin.ok('GET', '/v1/admin/events?service=hr%20sync&order=desc')) as Json;
    assert.deepEqual(types(byName.events), ['service-token-issued', 'service-enrolled']);
    assert.ok(byName.events.every((e: Json) => e.subject.service === hr.id));
    // With another filter both hold; a service nobody has finds nothing.
    const enrolled = (await t.admin.ok(
      'GET',
      `/v1/admin/events?service=${nightly.id}&type=service-enrolled&order=desc`,
    )) as Json;
    assert.deepEqual(types(enrolled.events), ['service-enrolled']);
    const nobody = (await t.admin.ok('GET', '/v1/admin/events?service=svc_nobody&order=desc')) as Json;
    assert.deepEqual(nobody.events, []);
  });

  it('refuses a service filter that is no name or id with SCHEMA_INVALID, in both modes', async () => {
    // The longest accepted (a list filter's 200 characters; 128 in the `after` mode, as its other filters)…
    assert.equal((await t.admin.request('GET', `/v1/admin/events?service=${'s'.repeat(200)}&order=desc`)).status, 200);
    assert.equal((await t.admin.request('GET', `/v1/admin/events?service=${'s'.repeat(128)}`)).status, 200);
    // …one more, or nothing at all, is refused with the stable code.
    assertError(
      await t.admin.request('GET', `/v1/admin/events?service=${'s'.repeat(201)}&order=desc`),
      400,
      'SCHEMA_INVALID',
    );
    assertError(await t.admin.request('GET', '/v1/admin/events?service=&order=desc'), 400, 'SCHEMA_INVALID');
    assertError(await t.admin.request('GET', `/v1/admin/events?service=${'s'.repeat(129)}`), 400, 'SCHEMA_INVALID');
  });

  it('follows the service’s events live, and only its own', async () => {
    const controller = new AbortController();
    const response = await fetch(`${t.url}/v1/admin/events/stream?service=${nightly.id}`, {
      headers: { authorization: `Bearer ${t.admin.token}` },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const received: Json[] = [];
    let buffer = '';
    try {
      while (received.length === 0) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split('\n').find((l) => l.startsWith('data: '));
          if (data !== undefined) received.push(JSON.parse(data.slice(6)));
          if (frame.startsWith(': connected')) {
            // Another service's token, then this one's: only the second is this service's.
            assert.equal((await requestServiceToken(t, hr, PAYMENTS, 'customer.view')).status, 200);
            assert.equal((await requestServiceToken(t, nightly, PAYMENTS, 'customer.view')).status, 200);
          }
        }
      }
    } finally {
      controller.abort();
    }
    assert.equal(received.length, 1);
    assert.equal(received[0].type, 'service-token-issued');
    assert.equal(received[0].subject.service, nightly.id);
  });
});
