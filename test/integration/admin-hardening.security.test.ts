import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminBrowser } from '../helpers/admin-session.js';
import {
  assertError,
  startTestBackend,
  TEST_ORIGIN,
  TestConsole,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * Findings of the admin console's security review, each kept as the attack that found it: the
 * bootstrap token's afterlife, step-up bypasses, a demoted admin who keeps watching, same-site
 * request forgery, challenge eviction, and what the public asset routes give away.
 */

/** The whole body of a live stream, or a failure if it is still open after `ms`. */
async function streamEnds(response: Response, ms = 2000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the live stream was still open after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([response.text(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const RANGE = `from=0&to=${Date.now() + 3600_000}`;

describe('the bootstrap token, once retired, leaves nothing behind', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t?.stop());

  it('closes the live stream the bootstrap token opened and kills every admin code it minted when the first admin registers', async () => {
    const stream = await fetch(`${t.url}/v1/admin/events/stream`, {
      headers: { authorization: `Bearer ${t.admin.token}` },
    });
    assert.equal(stream.status, 200);
    // Whoever holds the token mints extra admin codes before the real first admin registers...
    const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'grace', displayName: 'Grace Admin' });
    const spare = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'mallory', displayName: 'Mallory' });
    await t.admin.ok('POST', '/v1/admin/operators', { id: 'trudy', displayName: 'Trudy', roles: ['admin'] });
    const viaCodes = await t.admin.ok('POST', '/v1/admin/operators/trudy/enrolment-codes', {});
    // ...and a teller's code, which is no way into the admin console and stays usable.
    await t.admin.ok('POST', '/v1/admin/operators', { id: 'tom', displayName: 'Tom Teller', roles: ['teller'] });
    await t.admin.ok('POST', '/v1/admin/operators/tom/enrolment-codes', {});

    const grace = new AdminBrowser(t.url, t.backend.adminOrigin);
    assert.equal((await grace.register(first.code as string)).status, 201);

    assert.match(await streamEnds(stream), /: admin session ended\n\n$/);
    for (const code of [spare.code as string, viaCodes.code as string]) {
      const late = new AdminBrowser(t.url, t.backend.adminOrigin);
      assertError(await late.request('POST', '/v1/admin/auth/register/options', { code }), 401, 'ENROLMENT_CODE_USED');
    }
    const states = async (id: string) =>
      ((await grace.ok('GET', `/v1/admin/operators/${id}/enrolment-codes`)).codes as Json[]).map((c) => c.state);
    assert.deepEqual(await states('mallory'), ['revoked']);
    assert.deepEqual(await states('trudy'), ['revoked']);
    assert.deepEqual(await states('tom'), ['usable']);
    const retired = await grace.ok('GET', '/v1/admin/events?type=admin-action&limit=1000');
    const event = (retired.events as Json[]).find((e) => e.reasons.includes('bootstrap-token-disabled'));
    assert.equal(event?.detail.codesRevoked, 2, 'the retirement is on the audit trail');
  });
});

describe('an admin passkey registered on a console', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t?.stop());

  it('retires the bootstrap token and its live stream at once, not at its next request', async () => {
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const stream = await fetch(`${t.url}/v1/admin/events/stream`, {
      headers: { authorization: `Bearer ${t.admin.token}` },
    });
    assert.equal(stream.status, 200);
    const { code } = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'ops', displayName: 'Ops Admin' });
    const key = new SoftAuthenticator(TEST_ORIGIN);
    const { options } = await kiosk.ok('POST', '/v1/operators/enrol/options', { code });
    await kiosk.ok('POST', '/v1/operators/enrol/verify', { code, response: key.register(options) });
    // Nobody used the token since: the stream still ends, and the token is refused.
    assert.match(await streamEnds(stream), /: admin session ended\n\n$/);
    assertError(await t.admin.request('GET', '/v1/admin/consoles'), 401, 'ADMIN_BOOTSTRAP_DISABLED');
  });
});

describe('two first admins racing with bootstrap-minted codes', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t?.stop());

  it('lets exactly one of two concurrent registrations become the first admin', async () => {
    const a = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'alice', displayName: 'Alice' });
    const b = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'bob', displayName: 'Bob' });
    const alice = new AdminBrowser(t.url, t.backend.adminOrigin);
    const bob = new AdminBrowser(t.url, t.backend.adminOrigin);
    const prepared = await Promise.all(
      [
        [alice, a.code as string],
        [bob, b.code as string],
      ].map(async ([browser, code]) => {
        const who = browser as AdminBrowser;
        const { options } = await who.ok('POST', '/v1/admin/auth/register/options', { code });
        return { who, code: code as string, response: who.authenticator.register(options) };
      }),
    );
    const results = await Promise.all(
      prepared.map(({ who, code, response }) =>
        who.request('POST', '/v1/admin/auth/register/verify', { code, response }),
      ),
    );
    assert.deepEqual(results.map((r) => r.status).sort(), [201, 401], JSON.stringify(results.map((r) => r.body)));
    const loser = results.find((r) => r.status === 401);
    assert.equal(loser?.body.error.code, 'ENROLMENT_CODE_USED');
    assert.equal([alice, bob].filter((x) => x.cookie !== undefined).length, 1, 'one admin session, not two');
  });
});

describe('a signed-in admin session under attack', () => {
  let now = Date.now();
  let t: TestBackend;
  let root: AdminBrowser;
  let eve: AdminBrowser;
  let unbuilt: string;

  before(async () => {
    unbuilt = join(mkdtempSync(join(tmpdir(), 'baton-unbuilt-')), 'admin-console');
    t = await startTestBackend({ adminConsoleDir: unbuilt }, { clock: () => now });
    const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'root', displayName: 'Root Admin' });
    root = new AdminBrowser(t.url, t.backend.adminOrigin);
    assert.equal((await root.register(first.code as string)).status, 201);
    await root.ok('POST', '/v1/admin/operators', { id: 'eve', displayName: 'Eve', roles: ['admin'] });
    await root.ok('POST', '/v1/admin/operators', { id: 'tom', displayName: 'Tom Teller', roles: ['teller'] });
    const { code } = await root.ok('POST', '/v1/admin/operators/eve/enrolment-codes', {});
    eve = new AdminBrowser(t.url, t.backend.adminOrigin);
    assert.equal((await eve.register(code as string)).status, 201);
  });
  after(async () => {
    await t?.stop();
    rmSync(join(unbuilt, '..'), { recursive: true, force: true });
  });

  it('refuses to issue an enrolment code for an admin without a fresh step-up (a stolen session cannot add its own passkey)', async () => {
    now += 6 * 60 * 1000;
    assertError(
      await root.request('POST', '/v1/admin/operators/eve/enrolment-codes', {}),
      403,
      'ADMIN_STEP_UP_REQUIRED',
    );
    assertError(
      await root.request('POST', '/v1/admin/operators/root/enrolment-codes', {}),
      403,
      'ADMIN_STEP_UP_REQUIRED',
    );
    const codes = (await root.ok('GET', '/v1/admin/operators/eve/enrolment-codes')).codes as Json[];
    assert.equal(codes.filter((c) => c.state === 'usable').length, 0, 'no admin code was issued');
    // A teller's code is everyday work and needs no step-up.
    assert.equal((await root.request('POST', '/v1/admin/operators/tom/enrolment-codes', {})).status, 201);
    assert.equal((await root.stepUp()).status, 200);
    assert.equal((await root.request('POST', '/v1/admin/operators/eve/enrolment-codes', {})).status, 201);
  });

  it("keeps an admin's step-up challenge when strangers flood the sign-in options", async () => {
    const { options } = await root.ok('POST', '/v1/admin/auth/step-up/options', {});
    const stranger = new AdminBrowser(t.url, t.backend.adminOrigin);
    // (Past the first 20 the strangers are refused with 429 ADMIN_SIGN_IN_RATE_LIMITED.)
    for (let i = 0; i < 300; i++) await stranger.request('POST', '/v1/admin/auth/sign-in/options', {});
    const confirmed = await root.request('POST', '/v1/admin/auth/step-up/verify', {
      response: root.authenticator.assert(options),
    });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  });

  it('refuses a cookie request the browser marks as from another origin, even a read or an audit export', async () => {
    const exports = async () =>
      ((await root.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')).events as Json[]).filter((e) =>
        e.reasons.includes('audit-exported'),
      ).length;
    const before = await exports();
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'http://localhost:1' },
    ];
    for (const headers of foreign) {
      assertError(
        await root.request('GET', `/v1/admin/events/export?format=csv&${RANGE}`, undefined, headers),
        403,
        'ADMIN_ORIGIN_MISMATCH',
      );
      assertError(await root.request('GET', '/v1/admin/consoles', undefined, headers), 403, 'ADMIN_ORIGIN_MISMATCH');
    }
    assert.equal(await exports(), before, 'no export ran, none was recorded');
    // The console itself (same-origin fetches) and a typed address (none) still work.
    for (const site of ['same-origin', 'none']) {
      const ok = await root.request('GET', '/v1/admin/consoles', undefined, { 'sec-fetch-site': site });
      assert.equal(ok.status, 200);
    }
  });

  it('ends the admin sessions and the live stream of an operator whose admin role is removed', async () => {
    const stream = await fetch(`${t.url}/v1/admin/events/stream`, { headers: { cookie: eve.cookie ?? '' } });
    assert.equal(stream.status, 200);
    assert.equal((await root.stepUp()).status, 200);
    await root.ok('PUT', '/v1/admin/operators/eve/roles', { roles: ['teller'] });
    assert.match(await streamEnds(stream), /: admin session ended\n\n$/);
    const live = (await root.ok('GET', '/v1/admin/admin-sessions')).sessions as Json[];
    assert.deepEqual(
      live.map((s) => s.operatorId),
      ['root'],
      'her admin session ended',
    );
    assertError(await eve.request('GET', '/v1/admin/consoles'), 403, 'ADMIN_ROLE_REQUIRED');
  });

  it('refuses to remove, revoke or strip the passkey of the last admin who can sign in', async () => {
    assert.equal((await root.stepUp()).status, 200);
    const credential = [...root.authenticator.credentials.keys()][0] ?? '';
    assertError(await root.request('PUT', '/v1/admin/operators/root/roles', { roles: ['teller'] }), 409, 'LAST_ADMIN');
    assertError(await root.request('POST', '/v1/admin/operators/root/revoke', { reason: 'oops' }), 409, 'LAST_ADMIN');
    assertError(
      await root.request('POST', `/v1/admin/credentials/${credential}/revoke`, { reason: 'oops' }),
      409,
      'LAST_ADMIN',
    );
    const { operator } = await root.ok('GET', '/v1/admin/operators/root');
    assert.deepEqual(operator.roles, ['admin'], 'nothing changed');
    assert.equal((await root.request('GET', '/v1/admin/consoles')).status, 200, 'root can still work');
  });

  it('serves no prototype name as an asset and does not tell strangers where the backend is installed', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const response = await fetch(`${t.url}/admin/${name}`);
      assert.equal(response.status, 404, name);
      assert.equal(await response.text(), 'Not found\n');
    }
    const page = await fetch(`${t.url}/admin/`);
    assert.equal(page.status, 503);
    const text = await page.text();
    assert.match(text, /npm run build:admin/);
    assert.ok(!text.includes(unbuilt) && !text.includes(tmpdir()), `the answer names a path: ${text}`);
  });
});
