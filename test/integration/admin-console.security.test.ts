import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminRoutes, type AdminRouteDeps } from '../../backend/http/admin-routes.js';
import { adminAuthRoutes, type AdminAuthRouteDeps } from '../../backend/http/admin-auth-routes.js';
import { adminConsoleRoutes, type AdminConsoleRouteDeps } from '../../backend/http/admin-console-routes.js';
import {
  authenticatorMetadataRoutes,
  type AuthenticatorMetadataRouteDeps,
} from '../../backend/http/authenticator-metadata-routes.js';
import { Router } from '../../backend/http/router.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import {
  assertError,
  httpJson,
  startTestBackend,
  TestConsole,
  type ConsoleSocket,
  type Json,
  type TestBackend,
  TEST_ORIGIN,
} from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/**
 * Who may use the admin API and the live stream. The route list comes from the route factories
 * themselves (building them touches none of their dependencies), so a new admin endpoint is
 * covered without editing this file.
 */
function adminEndpoints(): { method: string; path: string; stepUp: boolean }[] {
  const none = {} as AdminRouteDeps & AdminAuthRouteDeps & AdminConsoleRouteDeps & AuthenticatorMetadataRouteDeps;
  return new Router()
    .add([
      ...adminRoutes(none),
      ...adminAuthRoutes(none),
      ...adminConsoleRoutes(none),
      ...authenticatorMetadataRoutes(none),
    ])
    .list()
    .filter((r) => r.auth === 'admin')
    .map((r) => ({
      method: r.method,
      stepUp: r.stepUp,
      path: r.path
        .replace(':epoch', '1')
        .replace(':codeId', '0123456789abcdef')
        .replace(/:[a-zA-Z]+/g, 'nobody'),
    }));
}

const BODIES: Record<string, unknown> = {
  '/v1/admin/policy': { baseVersion: 1, policy: DEFAULT_POLICY },
  '/v1/admin/operators': { displayName: 'Intruder', roles: ['admin'] },
  '/v1/admin/console-tokens': { channel: 'branch-kiosk' },
};
const bodyFor = (method: string, path: string) => (method === 'GET' ? undefined : (BODIES[path] ?? { reason: 'x' }));

describe('the admin console: who may act, and how', () => {
  let now = Date.now();
  let t: TestBackend;
  let kiosk: TestConsole;
  let socket: ConsoleSocket;
  let root: AdminBrowser;
  let eve: AdminBrowser;
  let teller: { operatorId: string; sessionId: string; token: string };
  let other: TestConsole;
  let rootSetCookie: string | undefined;
  const advance = (ms: number) => (now += ms);

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    kiosk = await TestConsole.enrol(t.url, t.admin);
    socket = await kiosk.connect();
    // A teller with a console passkey and a live session (and so a console assurance token).
    const enrolled = await enrolOperator(t.admin, kiosk, { displayName: 'Tom Teller' });
    const signedIn = await signIn(kiosk, enrolled.authenticator);
    teller = { operatorId: enrolled.operatorId, sessionId: signedIn.body.session.id, token: signedIn.body.token };
    // A second console that reports its outbox backlog when it says hello.
    other = await TestConsole.enrol(t.url, t.admin, 'contact-centre');
    const otherSocket = await other.connect({ hello: false });
    otherSocket.send({
      type: 'hello',
      protocol: 1,
      policyVersion: 0,
      revocationEpoch: 0,
      agentVersion: 'test',
      outbox: { pending: 42, max: 10000 },
    });
    await otherSocket.next('welcome');
    await otherSocket.close();
    // Before any admin passkey exists the bootstrap token creates the first admin, root; root (fresh
    // from registering, so stepped up) then makes eve an admin, to be demoted later.
    const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'root', displayName: 'Root Admin' });
    root = new AdminBrowser(t.url, t.backend.adminOrigin);
    eve = new AdminBrowser(t.url, t.backend.adminOrigin);
    assert.equal((await root.register(first.code as string)).status, 201);
    rootSetCookie = root.lastSetCookie;
    const { operator } = await root.ok('POST', '/v1/admin/operators', {
      id: 'eve',
      displayName: 'Eve',
      roles: ['admin'],
    });
    const eveCode = await root.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {});
    assert.equal((await eve.register(eveCode.code as string)).status, 201);
  });
  after(async () => {
    await socket?.close();
    await t?.stop();
  });

  it('sets an HttpOnly, SameSite=Strict session cookie that names no secret the server keeps', () => {
    assert.match(
      rootSetCookie ?? '',
      /^baton_admin=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
    );
  });

  it('refuses every admin endpoint and the live stream without credentials', async () => {
    for (const { method, path } of adminEndpoints()) {
      assertError(
        await httpJson(`${t.url}${path}`, { method, ...(method === 'GET' ? {} : { body: '{}' }) }),
        401,
        'ADMIN_AUTH_REQUIRED',
      );
    }
  });

  it('refuses the bootstrap token everywhere once an admin has a passkey', async () => {
    for (const { method, path } of adminEndpoints()) {
      const body = bodyFor(method, path);
      assertError(await t.admin.request(method, path, body), 401, 'ADMIN_BOOTSTRAP_DISABLED');
    }
    // It stays disabled: the first admin is the way in from now on.
    assertError(
      await t.admin.request('POST', '/v1/admin/bootstrap', { displayName: 'Mallory' }),
      401,
      'ADMIN_BOOTSTRAP_DISABLED',
    );
  });

  it("refuses a console's operator assurance token, as a bearer token or as the cookie", async () => {
    for (const { method, path } of adminEndpoints()) {
      const body = bodyFor(method, path);
      const asBearer = await httpJson(`${t.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${teller.token}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      assertError(asBearer, 401, 'ADMIN_AUTH_INVALID');
      const asCookie = await httpJson(`${t.url}${path}`, {
        method,
        headers: { cookie: `baton_admin=${teller.token}` },
      });
      assertError(asCookie, 401, 'ADMIN_AUTH_INVALID');
    }
  });

  it('gives a non-admin operator no admin session: code registration and passkey sign-in are refused', async () => {
    const { operator } = await root.ok('POST', '/v1/admin/operators', {
      displayName: 'Tina Teller',
      roles: ['teller'],
    });
    const { code } = await root.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {});
    const intruder = new AdminBrowser(t.url, t.backend.adminOrigin);
    assertError(
      await intruder.request('POST', '/v1/admin/auth/register/options', { code }),
      403,
      'ADMIN_ROLE_REQUIRED',
    );
    // Her real passkey, registered on the console, then used on the admin console's origin.
    const key = new SoftAuthenticator(TEST_ORIGIN);
    const { options: creation } = await kiosk.ok('POST', '/v1/operators/enrol/options', { code });
    await kiosk.ok('POST', '/v1/operators/enrol/verify', { code, response: key.register(creation) });
    const { options } = await intruder.ok('POST', '/v1/admin/auth/sign-in/options', {});
    const refused = await intruder.request('POST', '/v1/admin/auth/sign-in/verify', {
      response: key.assert(options, { origin: t.backend.adminOrigin }),
    });
    assertError(refused, 403, 'ADMIN_ROLE_REQUIRED');
    assert.equal(intruder.cookie, undefined, 'no session cookie was set');
    const failed = await root.ok('GET', `/v1/admin/events?type=sign-in-failed&operator=${operator.id as string}`);
    assert.deepEqual(failed.events.at(-1).reasons, ['admin-role-required']);
  });

  it('refuses the session of an operator who lost the admin role, on every endpoint and the live stream', async () => {
    assert.equal((await eve.request('GET', '/v1/admin/consoles')).status, 200);
    await root.ok('PUT', '/v1/admin/operators/eve/roles', { roles: ['teller'] });
    for (const { method, path } of adminEndpoints()) {
      assertError(await eve.request(method, path, bodyFor(method, path)), 403, 'ADMIN_ROLE_REQUIRED');
    }
  });

  it('refuses cookie requests that change state from another origin (CSRF), and ceremonies from another origin', async () => {
    const foreign = { origin: 'http://localhost:1' };
    assertError(
      await root.request('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' }, foreign),
      403,
      'ADMIN_ORIGIN_MISMATCH',
    );
    assertError(
      await root.request('POST', `/v1/admin/sessions/${teller.sessionId}/end`, { reason: 'x' }, foreign),
      403,
      'ADMIN_ORIGIN_MISMATCH',
    );
    const stranger = new AdminBrowser(t.url, 'http://localhost:1');
    assertError(await stranger.request('POST', '/v1/admin/auth/sign-in/options', {}), 403, 'ADMIN_ORIGIN_MISMATCH');
    assert.equal(
      (await root.ok('GET', '/v1/admin/sessions?state=active')).sessions.length,
      1,
      'the session was not ended',
    );
  });

  it('shows the outbox backlog a console reported in its hello', async () => {
    const { consoles } = await root.ok('GET', '/v1/admin/consoles');
    const reported = consoles.find((c: Json) => c.id === other.id);
    assert.deepEqual(
      { ...reported.outbox, reportedAt: typeof reported.outbox.reportedAt },
      { pending: 42, max: 10000, reportedAt: 'number' },
    );
    assert.equal(consoles.find((c: Json) => c.id === kiosk.id).outbox, null);
  });

  it('refuses every destructive action without a step-up in the last 5 minutes, then allows it after one', async () => {
    advance(6 * 60 * 1000);
    const destructive = adminEndpoints().filter((e) => e.stepUp);
    assert.ok(
      destructive.length >= 9,
      `expected the destructive routes, got ${destructive.map((d) => d.path).join(' ')}`,
    );
    for (const { method, path } of destructive) {
      assertError(await root.request(method, path, bodyFor(method, path)), 403, 'ADMIN_STEP_UP_REQUIRED');
    }
    assertError(
      await root.request('POST', '/v1/admin/operators', { displayName: 'Mallory', roles: ['admin'] }),
      403,
      'ADMIN_STEP_UP_REQUIRED',
    );
    assert.equal((await root.ok('GET', '/v1/admin/sessions?state=active')).sessions.length, 1, 'nothing was revoked');
    assert.equal((await root.ok('GET', '/v1/admin/policy')).version, 1, 'nothing was published');

    assert.equal((await root.stepUp()).status, 200);
    const outcome = await root.ok('POST', `/v1/admin/sessions/${teller.sessionId}/revoke`, {
      reason: 'Left the desk open',
    });
    const pushed = await socket.next('revocation', (m) => m.epoch === outcome.epoch);
    assert.deepEqual(
      pushed.items.map((i) => [i.kind, i.targetId]),
      [['session', teller.sessionId]],
    );
    const { revocations } = await root.ok('GET', '/v1/admin/revocations');
    assert.equal(revocations.at(-1).actor, 'operator:root', 'the real admin is the actor');
  });

  it('ends the live stream and refuses the cookie when the admin signs out', async () => {
    const second = new AdminBrowser(t.url, t.backend.adminOrigin, root.authenticator);
    assert.equal((await second.signIn()).status, 200);
    const stream = await fetch(`${t.url}/v1/admin/events/stream`, { headers: { cookie: second.cookie ?? '' } });
    assert.equal(stream.status, 200);
    const text = stream.text();
    const oldCookie = second.cookie ?? '';
    await second.ok('POST', '/v1/admin/auth/sign-out', {});
    assert.equal(second.cookie, undefined, 'sign-out clears the cookie');
    assert.match(await text, /: admin session ended/);
    // A copy of the old cookie is worth nothing.
    assertError(
      await second.request('GET', '/v1/admin/consoles', undefined, { cookie: oldCookie }),
      401,
      'ADMIN_SESSION_EXPIRED',
    );
  });

  it('expires an admin session after 15 idle minutes; a new passkey sign-in works', async () => {
    advance(16 * 60 * 1000);
    assertError(await root.request('GET', '/v1/admin/consoles'), 401, 'ADMIN_SESSION_EXPIRED');
    assert.equal((await root.signIn()).status, 200);
    assert.equal((await root.request('GET', '/v1/admin/consoles')).status, 200);
  });
});
