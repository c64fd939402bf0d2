import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestBackend,
  TestConsole,
  assertError,
  httpJson,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';
const ALL_CAEP = [
  'session-established',
  'session-presented',
  'session-revoked',
  'assurance-level-change',
  'credential-change',
  'device-compliance-change',
].map((t) => `${CAEP}${t}`);

/** A receiver's bearer-authenticated call to the transmitter. */
function as(t: TestBackend, token: string | undefined) {
  return (method: string, path: string, body?: unknown) =>
    httpJson(`${t.url}${path}`, {
      method,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
}

async function issueReceiver(
  t: TestBackend,
  name: string,
  scopes: string[],
): Promise<{ token: string; audience: string; id: string }> {
  const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', { name, scopes })) as Json;
  return {
    token: issued.token as string,
    audience: issued.receiver.audience as string,
    id: issued.receiver.id as string,
  };
}

/** A receiver (`name`, read and manage) with a poll stream of device-compliance-change, its conformance receiver. */
async function pollReceiver(t: TestBackend, issuer: string, name: string) {
  const r = await issueReceiver(t, name, ['ssf.read', 'ssf.manage']);
  const receiver = new ConformanceReceiver({ issuer, audience: r.audience, jwksUri: `${t.url}/ssf/jwks.json` });
  const created = (
    await as(t, r.token)('POST', '/ssf/streams', {
      delivery: { method: POLL },
      events_requested: [`${CAEP}device-compliance-change`],
    })
  ).body as Json;
  return { r, receiver, created, endpoint: created.delivery.endpoint_url as string };
}

/** Waits until the admin's view of stream `id` shows `n` SETs queued; returns that view. */
async function backlogOf(t: TestBackend, id: string, n: number): Promise<Json> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    const view = streams.find((x: Json) => x.id === id);
    if (view.backlog === n) return view;
    if (Date.now() > deadline) throw new Error(`backlog ${view.backlog as number}, expected ${n}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Shared Signals transmitter: metadata, receivers, streams, push', () => {
  let t: TestBackend;
  let issuer: string;
  const receivers: ConformanceReceiver[] = [];
  before(async () => {
    t = await startTestBackend({ ssf: { retryBaseMs: 20, retryMaxMs: 200 } });
    issuer = t.backend.adminOrigin;
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await t.stop();
  });

  it('publishes SSF 1.0 metadata and an RS256 (2048-bit) JWKS', async () => {
    const meta = (await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json;
    assert.equal(meta.issuer, issuer);
    assert.deepEqual(meta.delivery_methods_supported, [PUSH, POLL]);
    for (const key of [
      'jwks_uri',
      'configuration_endpoint',
      'status_endpoint',
      'add_subject_endpoint',
      'remove_subject_endpoint',
      'verification_endpoint',
    ]) {
      assert.match(meta[key], /^http:\/\/localhost:\d+\/ssf\//, key);
    }
    assert.ok(Array.isArray(meta.authorization_schemes) && meta.authorization_schemes.length > 0);
    assert.equal(meta.default_subjects, 'ALL');
    const jwks = (await httpJson(meta.jwks_uri, { method: 'GET' })).body as Json;
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0].kty, 'RSA');
    assert.equal(jwks.keys[0].alg, 'RS256');
    assert.equal(Buffer.from(jwks.keys[0].n, 'base64url').length * 8, 2048);
    assert.equal(jwks.keys[0].d, undefined, 'no private member is published');
  });

  it('refuses a missing, unknown or revoked token, and a token without the scope, with stable codes', async () => {
    assertError(await as(t, undefined)('GET', '/ssf/streams'), 401, 'SSF_TOKEN_MISSING');
    const wrong = await as(t, 'ssf_not-a-real-token')('GET', '/ssf/streams');
    assertError(wrong, 401, 'SSF_TOKEN_INVALID');
    const reader = await issueReceiver(t, 'SIEM (read only)', ['ssf.read']);
    assertError(
      await as(t, reader.token)('POST', '/ssf/streams', { delivery: { method: POLL } }),
      403,
      'SSF_SCOPE_INSUFFICIENT',
    );
    assert.deepEqual((await as(t, reader.token)('GET', '/ssf/streams')).body, []);
    // The admin list never shows the token; revoking it ends its use at once.
    const listed = (await t.admin.ok('GET', '/v1/admin/ssf/receivers')) as Json;
    assert.ok(listed.receivers.some((r: Json) => r.id === reader.id && r.scopes.join() === 'ssf.read'));
    assert.ok(!JSON.stringify(listed).includes(reader.token));
    await t.admin.ok('POST', `/v1/admin/ssf/receivers/${reader.id}/revoke`, {});
    assertError(await as(t, reader.token)('GET', '/ssf/streams'), 401, 'SSF_TOKEN_INVALID');
    assertError(
      await t.admin.request('POST', `/v1/admin/ssf/receivers/${reader.id}/revoke`, {}),
      409,
      'SSF_RECEIVER_REVOKED',
    );
  });

  it("validates stream configurations, and hides other receivers' streams", async () => {
    const r = await issueReceiver(t, 'Core banking', ['ssf.manage']);
    const call = as(t, r.token);
    // SSF 1.0 §8.1.1.1: a request without `delivery` is poll (RFC 8936); the answer names the method and Baton's
    // endpoint_url, and the receiver polls there.
    const defaulted = await call('POST', '/ssf/streams', { events_requested: ALL_CAEP });
    assert.equal(defaulted.status, 201, JSON.stringify(defaulted.body));
    const pollStream = defaulted.body as Json;
    const pollUrl = `${issuer}/ssf/poll/${pollStream.stream_id as string}`;
    assert.deepEqual(pollStream.delivery, { method: POLL, endpoint_url: pollUrl });
    assert.deepEqual(pollStream.events_delivered, ALL_CAEP);
    const polled = await call('POST', new URL(pollUrl).pathname, { returnImmediately: true });
    assert.equal(polled.status, 200, JSON.stringify(polled.body));
    assert.equal(typeof polled.body.sets, 'object');
    assert.equal(polled.body.moreAvailable, false);
    assert.equal((await call('DELETE', `/ssf/streams?stream_id=${pollStream.stream_id as string}`)).status, 204);
    assertError(
      await call('POST', '/ssf/streams', { delivery: { method: PUSH, endpoint_url: 'http://example.com/events' } }),
      400,
      'SSF_STREAM_INVALID',
    );
    assertError(
      await call('POST', '/ssf/streams', { delivery: { method: 'urn:example:smoke-signals' } }),
      400,
      'SCHEMA_INVALID',
    );
    assertError(
      await call('POST', '/ssf/streams', { delivery: { method: POLL }, colour: 'blue' }),
      400,
      'SCHEMA_INVALID',
    );
    const created = await call('POST', '/ssf/streams', {
      delivery: { method: POLL },
      events_requested: [`${CAEP}session-revoked`, 'urn:example:unknown'],
    });
    assert.equal(created.status, 201);
    const stream = created.body as Json;
    assert.deepEqual(stream.events_delivered, [`${CAEP}session-revoked`]);
    assert.equal(stream.aud, r.audience);
    assert.equal(stream.delivery.endpoint_url, `${issuer}/ssf/poll/${stream.stream_id as string}`);
    // Update, replace, method change refused, status, delete.
    const patched = (await call('PATCH', '/ssf/streams', { stream_id: stream.stream_id, description: 'core banking' }))
      .body as Json;
    assert.equal(patched.description, 'core banking');
    assert.deepEqual(patched.events_delivered, [`${CAEP}session-revoked`]);
    assertError(
      await call('PATCH', '/ssf/streams', {
        stream_id: stream.stream_id,
        delivery: { method: PUSH, endpoint_url: 'https://x.example/e' },
      }),
      400,
      'SSF_STREAM_INVALID',
    );
    assertError(await call('PUT', '/ssf/streams', { stream_id: stream.stream_id }), 400, 'SSF_STREAM_INVALID');
    const replaced = (await call('PUT', '/ssf/streams', { stream_id: stream.stream_id, delivery: { method: POLL } }))
      .body as Json;
    assert.deepEqual(replaced.events_delivered, []);
    assert.equal(replaced.description, undefined);
    const other = await issueReceiver(t, 'Someone else', ['ssf.manage']);
    assertError(
      await as(t, other.token)('GET', `/ssf/streams?stream_id=${stream.stream_id as string}`),
      404,
      'SSF_STREAM_NOT_FOUND',
    );
    assertError(
      await as(t, other.token)('DELETE', `/ssf/streams?stream_id=${stream.stream_id as string}`),
      404,
      'SSF_STREAM_NOT_FOUND',
    );
    assertError(await call('GET', '/ssf/status'), 400, 'SSF_STREAM_INVALID');
    assert.deepEqual((await call('GET', `/ssf/status?stream_id=${stream.stream_id as string}`)).body, {
      stream_id: stream.stream_id,
      status: 'enabled',
    });
    assert.equal((await call('DELETE', `/ssf/streams?stream_id=${stream.stream_id as string}`)).status, 204);
    assertError(await call('GET', `/ssf/streams?stream_id=${stream.stream_id as string}`), 404, 'SSF_STREAM_NOT_FOUND');
  });

  it('pushes CAEP SETs that pass the conformance receiver, in order, with txn linking one cause', async () => {
    const r = await issueReceiver(t, 'Conformance receiver', ['ssf.manage']);
    const receiver = await new ConformanceReceiver({
      issuer,
      audience: r.audience,
      jwksUri: `${t.url}/ssf/jwks.json`,
      expectAuthorization: 'Bearer receiver-secret',
    }).listen();
    receivers.push(receiver);
    const created = (
      await as(t, r.token)('POST', '/ssf/streams', {
        delivery: { method: PUSH, endpoint_url: receiver.url, authorization_header: 'Bearer receiver-secret' },
        events_requested: [...ALL_CAEP, 'urn:baton:event:operator-revoked'],
      })
    ).body as Json;
    assert.equal(created.delivery.authorization_header, undefined, "the receiver's secret is never echoed");

    // Verification first.
    assert.equal(
      (await as(t, r.token)('POST', '/ssf/verify', { stream_id: created.stream_id, state: 'abc123' })).status,
      204,
    );
    await receiver.waitFor((s) => s.some((x) => x.type.endsWith('/verification')), 10_000, 'the verification event');
    assert.equal(receiver.ofType('verification')[0]?.event.state, 'abc123');

    // A console enrols (compliant), an operator signs in (established), two sessions are revoked with the operator.
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console);
    const signed = (await signIn(console, authenticator)).body as Json;
    assert.ok(signed.session?.id, JSON.stringify(signed));
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left the bank' });
    await receiver.waitFor(
      (s) => s.some((x) => x.type.endsWith('session-revoked')) && s.some((x) => x.type.endsWith(':operator-revoked')),
      10_000,
      'session-revoked and operator-revoked',
    );

    const compliant = receiver.ofType('device-compliance-change').find((s) => s.event.current_status === 'compliant');
    assert.ok(compliant, 'console enrolled → compliant');
    assert.equal((compliant.claims.sub_id as Json).device.id, console.id);
    const established = receiver.ofType('session-established')[0];
    assert.ok(established);
    const subject = established.claims.sub_id as Json;
    assert.equal(subject.format, 'complex');
    assert.deepEqual(subject.user, { format: 'iss_sub', iss: issuer, sub: operatorId });
    assert.deepEqual(subject.device, { format: 'opaque', id: console.id });
    assert.deepEqual(subject.session, { format: 'opaque', id: signed.session.id });
    assert.equal(typeof established.event.acr, 'string');
    assert.ok(Array.isArray(established.event.amr) && (established.event.amr as string[]).length > 0);
    const revoked = receiver.ofType('session-revoked')[0];
    assert.ok(revoked);
    assert.deepEqual(revoked.event.reason_admin, { en: 'left the bank' });
    assert.equal(revoked.event.initiating_entity, 'admin');
    assert.equal(typeof revoked.claims.txn, 'string');
    // One cause (the operator's revocation), one txn; Baton's own event only because the stream asked for it.
    const operatorRevoked = receiver.ofType('operator-revoked')[0];
    assert.equal(operatorRevoked?.claims.txn, revoked.claims.txn);
    // The passkey registered during enrolment: credential-change create, with its AAGUID.
    const created2 = receiver.ofType('credential-change').find((s) => s.event.change_type === 'create');
    assert.ok(created2, 'credential-change create');
    assert.match(String(created2.event.fido2_aaguid), /^[0-9a-f-]{36}$/);
    assert.ok(['fido2-roaming', 'fido2-platform'].includes(String(created2.event.credential_type)));
    // Order per subject: established before revoked.
    const order = receiver.accepted.map((s) => s.jti);
    assert.ok(order.indexOf(established.jti) < order.indexOf(revoked.jti));
    assert.deepEqual(receiver.rejected, []);
  });
  it('delivers by poll (RFC 8936): maxEvents, moreAvailable, acks, returnImmediately, long polling, setErrs', async () => {
    const { r, receiver, created, endpoint } = await pollReceiver(t, issuer, 'Poller');
    const consoles = [];
    for (let i = 0; i < 3; i++) consoles.push(await TestConsole.enrol(t.url, t.admin));
    const backlog = (n: number) => backlogOf(t, created.stream_id as string, n);
    await backlog(3);
    const first = await receiver.poll(endpoint, r.token, { maxEvents: 2, returnImmediately: true });
    assert.equal(first.accepted.length, 2);
    assert.deepEqual(first.errors, {});
    assert.equal(first.moreAvailable, true);
    const second = await receiver.poll(endpoint, r.token, {
      ack: first.accepted,
      maxEvents: 10,
      returnImmediately: true,
    });
    assert.equal(second.accepted.length, 1);
    assert.equal(second.moreAvailable, false);
    assert.deepEqual(
      receiver.accepted.map((x) => (x.claims.sub_id as Json).device.id),
      consoles.map((c) => c.id),
      'in order',
    );
    await backlog(1); // the first two were acknowledged: gone from the queue
    const empty = await receiver.poll(endpoint, r.token, { ack: second.accepted, returnImmediately: true });
    assert.deepEqual(empty.raw, {});
    await backlog(0);
    // A long poll is answered when the next event is queued.
    const waiting = receiver.poll(endpoint, r.token, { returnImmediately: false });
    const late = await TestConsole.enrol(t.url, t.admin);
    const woken = await waiting;
    assert.equal(woken.accepted.length, 1);
    assert.equal((receiver.accepted.at(-1)?.claims.sub_id as Json).device.id, late.id);
    // A long poll the receiver abandons (it restarts) takes nothing: the next poll gets the SET at once.
    await receiver.poll(endpoint, r.token, { ack: woken.accepted, returnImmediately: true });
    await backlog(0);
    const abandoned = new AbortController();
    const dropped = fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${r.token}` },
      body: JSON.stringify({ returnImmediately: false }),
      signal: abandoned.signal,
    }).catch((error: unknown) => error);
    await backlog(0);
    abandoned.abort();
    assert.ok((await dropped) instanceof Error, 'the abandoned poll never answered');
    const after = await TestConsole.enrol(t.url, t.admin);
    await backlog(1);
    const next = await receiver.poll(endpoint, r.token, { returnImmediately: true });
    assert.deepEqual(
      next.accepted.map((jti) => (receiver.accepted.find((x) => x.jti === jti)?.claims.sub_id as Json).device.id),
      [after.id],
      'the SET queued after the abandoned poll goes to the next poll, not to the dead one',
    );
    // A SET the receiver reports it could not process is not handed out again; the error shows on the stream.
    const errs = await receiver.poll(endpoint, r.token, {
      setErrs: { [next.accepted[0] as string]: { err: 'invalid_request', description: 'cannot map device' } },
      returnImmediately: true,
    });
    assert.deepEqual(errs.raw, {});
    const view = await backlog(0);
    assert.match(view.lastError, /invalid_request: cannot map device/);
    // Another receiver cannot poll it; a push stream cannot be polled.
    const other = await issueReceiver(t, 'Other poller', ['ssf.read']);
    assertError(await as(t, other.token)('POST', new URL(endpoint).pathname, {}), 404, 'SSF_STREAM_NOT_FOUND');
    assertError(await as(t, r.token)('POST', new URL(endpoint).pathname, { maxEvents: -1 }), 400, 'SCHEMA_INVALID');
  });

  it('holds a long poll on a paused stream and hands it what was held once enabled; a pause ends a long poll without SETs', async () => {
    const { r, receiver, created, endpoint } = await pollReceiver(t, issuer, 'Paused poller');
    const id = created.stream_id as string;
    const status = (value: string) => t.admin.ok('POST', `/v1/admin/ssf/streams/${id}/status`, { status: value });
    const devices = (jtis: string[]) =>
      jtis
        .map((jti) => receiver.accepted.find((x) => x.jti === jti)?.claims.sub_id as Json)
        .flatMap((sub) => (sub?.device === undefined ? [] : [sub.device.id as string]));

    const held = await TestConsole.enrol(t.url, t.admin);
    await backlogOf(t, id, 1);
    await status('paused');
    await backlogOf(t, id, 2); // and the stream-updated SET
    // Before, the transmitter answered such a poll at once, empty: a receiver looping on long polls spun.
    const waiting = receiver.poll(endpoint, r.token, { returnImmediately: false });
    const early = await Promise.race([
      waiting.then(() => 'answered'),
      new Promise((resolve) => setTimeout(resolve, 300, 'held')),
    ]);
    assert.equal(early, 'held', 'a long poll on a paused stream is held, not answered at once');
    await status('enabled');
    const resumed = await waiting;
    assert.deepEqual(devices(resumed.accepted), [held.id], 'the SET held while paused goes to the poll held over it');
    await receiver.poll(endpoint, r.token, { ack: resumed.accepted, returnImmediately: true });
    await backlogOf(t, id, 0);

    // A long poll under way when the stream is paused answers, and takes nothing queued from then on.
    const inFlight = receiver.poll(endpoint, r.token, { returnImmediately: false });
    await new Promise((resolve) => setTimeout(resolve, 300)); // let it reach the transmitter (if not: held, same answer)
    await status('paused');
    const ended = await inFlight;
    assert.deepEqual(ended.raw, {}, 'nothing handed out once paused (its stream-updated SET is held too)');
    await backlogOf(t, id, 1);
  });

  it('records every status change of a stream as an event: who, old and new status, the SETs a disable drops', async () => {
    const r = await issueReceiver(t, 'Status changes', ['ssf.manage', 'ssf.read']);
    const created = (
      await as(t, r.token)('POST', '/ssf/streams', {
        delivery: { method: POLL },
        events_requested: [`${CAEP}device-compliance-change`],
      })
    ).body as Json;
    const id = created.stream_id as string;
    const view = async () =>
      ((await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).streams.find((x: Json) => x.id === id) as Json;
    const statusEvents = async () =>
      (await t.backend.events.query({ type: 'admin-action', limit: 10_000 }))
        .filter((e) => e.reasons.some((x) => x.startsWith('ssf-stream-')) && e.detail?.stream === id)
        .sort((a, b) => a.cursor - b.cursor);
    // The admin's id as Baton records it (the receiver was issued by the same admin).
    const issued = (await t.backend.events.query({ type: 'admin-action', limit: 10_000 })).find(
      (e) => e.reasons.includes('ssf-receiver-issued') && e.detail?.receiver === r.id,
    );
    const admin = issued?.detail?.actor;
    assert.equal(typeof admin, 'string');

    for (let i = 0; i < 2; i++) await TestConsole.enrol(t.url, t.admin);
    const deadline = Date.now() + 10_000;
    while ((await view()).backlog !== 2) {
      assert.ok(Date.now() < deadline, 'two SETs queued');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    await t.admin.ok('POST', `/v1/admin/ssf/streams/${id}/status`, { status: 'paused', reason: 'maintenance' });
    assert.equal((await as(t, r.token)('POST', '/ssf/status', { stream_id: id, status: 'enabled' })).status, 200);
    const queued = (await view()).backlog as number; // the two SETs and the two stream-updated events
    assert.equal(queued, 4);
    await t.admin.ok('POST', `/v1/admin/ssf/streams/${id}/status`, { status: 'disabled' });
    assert.equal((await view()).backlog, 0);

    const recorded = await statusEvents();
    assert.deepEqual(
      recorded.map((e) => ({ reasons: e.reasons, outcome: e.outcome, ...e.detail })),
      [
        {
          reasons: ['ssf-stream-paused'],
          outcome: 'success',
          actor: admin,
          stream: id,
          receiver: r.id,
          previousStatus: 'enabled',
          status: 'paused',
          reason: 'maintenance',
        },
        {
          reasons: ['ssf-stream-enabled'],
          outcome: 'success',
          actor: `receiver:${r.id}`,
          stream: id,
          receiver: r.id,
          previousStatus: 'paused',
          status: 'enabled',
          reason: null,
        },
        {
          reasons: ['ssf-stream-disabled'],
          outcome: 'success',
          actor: admin,
          stream: id,
          receiver: r.id,
          previousStatus: 'enabled',
          status: 'disabled',
          reason: `set by ${admin as string}`,
          droppedSets: 4,
        },
      ],
    );
    // A request that changes nothing records nothing.
    await t.admin.ok('POST', `/v1/admin/ssf/streams/${id}/status`, {
      status: 'disabled',
      reason: `set by ${admin as string}`,
    });
    assert.equal((await statusEvents()).length, 3);
  });
});
