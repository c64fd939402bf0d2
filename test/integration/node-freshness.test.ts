/**
 * A node whose view of revocations may be stale (backend/cluster/freshness.ts) decides explicitly,
 * per channel: `strict` refuses sign-in, step-up and their options with 503 NODE_STALE before any
 * work; `best-effort` proceeds and says `stale-node` in the decision and its events. `/readyz` takes
 * the node out of a load balancer's rotation meanwhile, `/healthz` says why, the admin node list
 * shows it, and the consoles connected to it are told. Runs on the suite's engine
 * (BATON_TEST_DATABASE). The node is made stale through the freshness monitor's clock (a test hook
 * of startBackend): no sleeping for the bound.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { parseBackendConfig } from '../../backend/config.js';
import { startBackend, type Backend } from '../../backend/server.js';
import { verifyPoolPays } from '../../backend/crypto/verify-pool.js';
import { decodeJwt } from 'jose';
import type { Policy } from '../../shared/policy.js';
import {
  AdminClient,
  TEST_ORIGIN,
  TestConsole,
  assertError,
  httpJson,
  type Json,
  type TestBackend,
  startTestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { appKeyPair, exchange, tellerPolicy } from '../helpers/action-token-fixtures.js';
import type { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const STALE_AFTER_SECONDS = 10;

describe('a node whose view of revocations may be stale', () => {
  /** How far the freshness monitor's clock is ahead of real time. */
  let skewMs = 0;
  let t: TestBackend;
  let backend: Backend;
  let strict: TestConsole;
  let bestEffort: TestConsole;
  let strictTeller: SoftAuthenticator;
  let bestEffortTeller: SoftAuthenticator;

  before(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-freshness-'));
    const databaseUrl = await testDatabaseUrl(dataDir);
    const config = parseBackendConfig(
      {
        port: 0,
        origins: [TEST_ORIGIN],
        logLevel: 'silent',
        durability: 'normal',
        dataDir,
        staleAfterSeconds: STALE_AFTER_SECONDS,
        ...(databaseUrl === undefined ? {} : { databaseUrl }),
      },
      'test',
    );
    backend = await startBackend(config, {
      logger: pino({ level: 'silent' }),
      // The heartbeat runs at start only (then when a test asks): the clock alone decides staleness.
      cluster: { freshnessClock: () => Date.now() + skewMs, freshnessIntervalMs: 3_600_000 },
    });
    const url = `http://localhost:${backend.port}`;
    const admin = new AdminClient(url, backend.bootstrapAdminToken ?? '');
    t = {
      backend,
      url,
      dataDir,
      databaseUrl,
      config,
      admin,
      stop: async () => {
        await backend.stop();
        rmSync(dataDir, { recursive: true, force: true });
        await dropTestDatabase(dataDir);
      },
    };
    // The contact centre keeps serving on a stale node; the branch kiosks (the default) do not. The
    // teller app takes action tokens on both.
    const current = (await admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
    const policy: Policy = structuredClone(tellerPolicy((await appKeyPair()).publicJwk));
    policy.channels['contact-centre'] = { ...policy.channels['contact-centre']!, staleNode: 'best-effort' };
    await admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });

    strict = await TestConsole.enrol(url, admin, 'branch-kiosk');
    bestEffort = await TestConsole.enrol(url, admin, 'contact-centre');
    strictTeller = (await enrolOperator(admin, strict, { displayName: 'Kim Kiosk' })).authenticator;
    bestEffortTeller = (await enrolOperator(admin, bestEffort, { displayName: 'Cal Centre' })).authenticator;
  });
  after(() => t?.stop());

  async function readyz(): Promise<{ status: number; body: Json }> {
    // Raw fetch: a 503 here carries the readiness body, not an error body.
    const response = await fetch(`${t.url}/readyz`);
    return { status: response.status, body: (await response.json()) as Json };
  }

  function makeStale(): void {
    skewMs += (STALE_AFTER_SECONDS + 1) * 1000;
    assert.equal(backend.services.freshness.state().stale, true);
  }

  async function makeFresh(): Promise<void> {
    // One heartbeat now: a round trip through the bus confirms the view at the monitor's clock.
    const state = await backend.services.freshness.check();
    assert.equal(state.stale, false);
  }

  it('is ready while fresh; the admin node list shows this node live', async () => {
    const ready = await readyz();
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.deepEqual(ready.body, { ready: true, nodeId: backend.services.nodeId });

    const health = await httpJson(`${t.url}/healthz`, { method: 'GET' });
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    assert.equal(health.body.nodeId, backend.services.nodeId);
    assert.equal(health.body.engine, backend.store.engine);
    assert.equal(health.body.freshness.stale, false);
    assert.equal(health.body.database.reachable, true);

    const nodes = (await t.admin.ok('GET', '/v1/admin/nodes')) as Json;
    assert.equal(nodes.nodeId, backend.services.nodeId);
    assert.equal(nodes.staleAfterSeconds, STALE_AFTER_SECONDS);
    assert.equal(nodes.freshness.stale, false);
    const self = (nodes.nodes as Json[]).filter((n) => n.self === true);
    assert.equal(self.length, 1, JSON.stringify(nodes));
    assert.equal(self[0].nodeId, backend.services.nodeId);
    assert.equal(self[0].state, 'live');
    assert.equal(self[0].pid, process.pid);
    assert.equal(typeof self[0].host, 'string');
  });

  it('refuses the node list to a caller without an admin session', async () => {
    const anonymous = await httpJson(`${t.url}/v1/admin/nodes`, { method: 'GET' });
    assert.equal(anonymous.status, 401, JSON.stringify(anonymous.body));
  });

  it('strict: refuses sign-in and step-up with 503 NODE_STALE before any work, and serves again once fresh', async () => {
    // A session and a sign-in ceremony begun while fresh.
    const { options } = (await strict.ok('POST', '/v1/sign-in/options', {})) as Json;
    const session = (await strict.ok('POST', '/v1/sign-in/verify', { response: strictTeller.assert(options) })) as Json;
    const sessionId = session.session.id as string;
    const pending = strictTeller.assert(
      ((await strict.ok('POST', '/v1/sign-in/options', {})) as Json).options as Parameters<
        SoftAuthenticator['assert']
      >[0],
    );
    const established = async () =>
      (
        (await t.admin.ok(
          'GET',
          `/v1/admin/events?origin=backend&type=session-established&console=${strict.id}`,
        )) as Json
      ).events as Json[];
    const before = (await established()).length;

    makeStale();
    assertError(await strict.request('POST', '/v1/sign-in/options', {}), 503, 'NODE_STALE');
    const refused = await strict.request('POST', '/v1/sign-in/verify', { response: pending });
    assertError(refused, 503, 'NODE_STALE');
    assert.match(refused.body.error.message as string, /stale/);
    assertError(
      await strict.request('POST', `/v1/sessions/${sessionId}/step-up/options`, { action: 'payment.approve' }),
      503,
      'NODE_STALE',
    );
    assert.equal((await established()).length, before, 'a refused sign-in records no session');

    // Out of the rotation while stale, and /healthz says why.
    const ready = await readyz();
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(ready.body.ready, false);
    assert.ok((ready.body.problems as string[]).includes('node-stale'), JSON.stringify(ready.body));
    const health = await httpJson(`${t.url}/healthz`, { method: 'GET' });
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'degraded');
    assert.ok((health.body.problems as string[]).includes('node-stale'));
    assert.equal(health.body.freshness.stale, true);
    assert.equal(typeof health.body.freshness.reason, 'string');
    const nodes = (await t.admin.ok('GET', '/v1/admin/nodes')) as Json;
    assert.equal(nodes.freshness.stale, true);

    await makeFresh();
    assert.equal((await readyz()).status, 200);
    // Nothing was consumed by the refusal: the ceremony begun before completes now.
    const signedIn = await strict.request('POST', '/v1/sign-in/verify', { response: pending });
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    assert.equal((await established()).length + (signedIn.body.resumed === true ? 1 : 0), before + 1);
  });

  it('best-effort: proceeds on the last known state and says stale-node in the decision and its events', async () => {
    makeStale();
    try {
      const { options } = (await bestEffort.ok('POST', '/v1/sign-in/options', {})) as Json;
      const result = await bestEffort.request('POST', '/v1/sign-in/verify', {
        response: bestEffortTeller.assert(options),
      });
      assert.equal(result.status, 200, JSON.stringify(result.body));
      const sessionId = result.body.session.id as string;
      const events = ((await t.admin.ok('GET', `/v1/admin/events?origin=backend&session=${sessionId}`)) as Json)
        .events as Json[];
      const started = events.find((e) => e.type === 'session-established' || e.type === 'session-resumed');
      assert.ok(started !== undefined, JSON.stringify(events));
      assert.ok((started.reasons as string[]).includes('stale-node'), JSON.stringify(started));
      assert.equal(typeof started.detail.staleCause, 'string', JSON.stringify(started));
      assert.equal(typeof started.detail.staleSince, 'number', JSON.stringify(started));

      const stepUp = (await bestEffort.ok('POST', `/v1/sessions/${sessionId}/step-up/options`, {
        action: 'payment.approve',
      })) as Json;
      assert.ok((stepUp.decision.reasons as string[]).includes('stale-node'), JSON.stringify(stepUp.decision));
    } finally {
      await makeFresh();
    }
    // Fresh again: no mark.
    const { options } = (await bestEffort.ok('POST', '/v1/sign-in/options', {})) as Json;
    const again = await bestEffort.request('POST', '/v1/sign-in/verify', {
      response: bestEffortTeller.assert(options),
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const events = (
      (await t.admin.ok('GET', `/v1/admin/events?origin=backend&session=${again.body.session.id as string}`)) as Json
    ).events as Json[];
    const last = events.filter((e) => e.type === 'session-established' || e.type === 'session-resumed').at(-1);
    assert.ok(last !== undefined && !(last.reasons as string[]).includes('stale-node'), JSON.stringify(last));
  });

  it('exchanges action tokens as it signs in: strict refuses with NODE_STALE, best-effort issues marked stale-node', async () => {
    // Sessions begun while fresh, at `presence` (a tap without user verification): enough to look a
    // customer up, not to approve a payment.
    const kiosk = (await signIn(strict, strictTeller, { userVerified: false })).body as Json;
    const centre = (await signIn(bestEffort, bestEffortTeller, { userVerified: false })).body as Json;
    const centreSession = centre.session.id as string;
    let issuedJti: string;
    makeStale();
    try {
      assertError(await exchange(strict, kiosk.token as string, 'customer.view'), 503, 'NODE_STALE');

      const issued = await exchange(bestEffort, centre.token as string, 'customer.view');
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      issuedJti = decodeJwt(issued.body.access_token as string).jti as string;
      // A refusal's decision says so too, as a step-up's does.
      const refused = await exchange(bestEffort, centre.token as string, 'payment.approve');
      assertError(refused, 403, 'ACTION_STEP_UP_REQUIRED');
      assert.ok((refused.body.error.decision.reasons as string[]).includes('stale-node'), JSON.stringify(refused.body));
    } finally {
      await makeFresh();
    }
    const again = await exchange(bestEffort, centre.token as string, 'customer.view');
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const freshJti = decodeJwt(again.body.access_token as string).jti as string;

    // What the security team reads: the token issued on the stale node, and the refusal, say so; the
    // token issued once fresh again does not.
    const events = ((await t.admin.ok('GET', `/v1/admin/events?origin=backend&session=${centreSession}`)) as Json)
      .events as Json[];
    const issuedEvent = events.find((e) => e.type === 'action-token-issued' && e.detail.jti === issuedJti);
    assert.ok(issuedEvent !== undefined, JSON.stringify(events));
    assert.ok((issuedEvent.reasons as string[]).includes('stale-node'), JSON.stringify(issuedEvent));
    assert.equal(typeof issuedEvent.detail.staleCause, 'string', JSON.stringify(issuedEvent));
    assert.equal(typeof issuedEvent.detail.staleSince, 'number', JSON.stringify(issuedEvent));
    const refusedEvent = events.find(
      (e) => e.type === 'action-token-refused' && e.detail.code === 'ACTION_STEP_UP_REQUIRED',
    );
    assert.ok(refusedEvent !== undefined, JSON.stringify(events));
    assert.ok((refusedEvent.reasons as string[]).includes('stale-node'), JSON.stringify(refusedEvent));
    const freshEvent = events.find((e) => e.type === 'action-token-issued' && e.detail.jti === freshJti);
    assert.ok(
      freshEvent !== undefined && !(freshEvent.reasons as string[]).includes('stale-node'),
      JSON.stringify(freshEvent),
    );
    // The strict refusal is on record with its code.
    const kioskEvents = (
      (await t.admin.ok(
        'GET',
        `/v1/admin/events?origin=backend&type=action-token-refused&console=${strict.id}`,
      )) as Json
    ).events as Json[];
    assert.ok(
      kioskEvents.some((e) => e.detail.code === 'NODE_STALE'),
      JSON.stringify(kioskEvents),
    );
  });

  it('best-effort: an issuance refused because its session ended while the token was signed still says stale-node', async () => {
    const centre = (await signIn(bestEffort, bestEffortTeller, { userVerified: false })).body as Json;
    const sessionId = centre.session.id as string;
    const issuer = backend.services.actionTokens.issuer;
    const sign = issuer.sign.bind(issuer);
    makeStale();
    try {
      // The session is revoked after the exchange read it as active, before the issuance was recorded.
      issuer.sign = async (claims) => {
        issuer.sign = sign;
        await t.admin.ok('POST', `/v1/admin/sessions/${sessionId}/revoke`, { reason: 'reported stolen' });
        return sign(claims);
      };
      assertError(await exchange(bestEffort, centre.token as string, 'customer.view'), 409, 'SESSION_NOT_ACTIVE');
    } finally {
      issuer.sign = sign;
      await makeFresh();
    }
    // What the security team reads: the refusal was decided on a stale node's view, like the issuance it replaced.
    const refused = (
      (await t.admin.ok(
        'GET',
        `/v1/admin/events?origin=backend&type=action-token-refused&session=${sessionId}`,
      )) as Json
    ).events as Json[];
    const closed = refused.find((e) => e.detail.code === 'SESSION_NOT_ACTIVE');
    assert.ok(closed !== undefined, JSON.stringify(refused));
    assert.ok((closed.reasons as string[]).includes('stale-node'), JSON.stringify(closed));
    assert.equal(typeof closed.detail.staleSince, 'number', JSON.stringify(closed));
  });

  it('tells a console whose hello it answers while stale, right after its welcome; a fresh node does not', async () => {
    makeStale();
    try {
      const socket = await strict.connect();
      await socket.next('welcome');
      // A barrier: the backend answered the hello (its held pushes too) before this batch's ack.
      await strict.roundTrip(socket);
      const welcomeAt = socket.received.findIndex((m) => m.type === 'welcome');
      const notices = socket.received.filter((m) => m.type === 'error' && m.code === 'NODE_STALE');
      assert.equal(notices.length, 1, JSON.stringify(socket.received));
      const notice = notices[0] as Json;
      assert.equal(notice.fatal, false);
      assert.match(notice.message as string, /stale/);
      assert.equal(socket.received.indexOf(notices[0]!), welcomeAt + 1, JSON.stringify(socket.received));
      await socket.close();
    } finally {
      await makeFresh();
    }
    const socket = await strict.connect();
    await strict.roundTrip(socket);
    assert.ok(socket.received.some((m) => m.type === 'welcome'));
    assert.ok(!socket.received.some((m) => m.type === 'error'), JSON.stringify(socket.received));
    await socket.close();
  });

  // Last: it closes the node's bus (the way a node loses its notifications).
  it('tells the consoles connected to it when it turns stale (a non-fatal NODE_STALE notice), once each', async () => {
    const socket = await strict.connect();
    await socket.next('welcome');
    skewMs += (STALE_AFTER_SECONDS + 1) * 1000;
    // Arrived once stale and told at its hello: the same spell is not told again when the node says it.
    const arrived = await bestEffort.connect();
    await arrived.next('error', (m) => m.code === 'NODE_STALE');
    await backend.services.bus.close();
    const notice = await socket.next('error', (m) => m.code === 'NODE_STALE');
    assert.equal(notice.fatal, false);
    assert.match(notice.message, /stale/);
    await bestEffort.roundTrip(arrived);
    const told = arrived.received.filter((m) => m.type === 'error' && m.code === 'NODE_STALE');
    assert.equal(told.length, 1, JSON.stringify(arrived.received));
    await arrived.close();
    await socket.close();
  });
});

describe(
  'WebAuthn verification on the threads of the verification pool',
  {
    skip: verifyPoolPays() ? false : 'two cores or fewer: the backend verifies on its event loop (verifyPoolPays)',
  },
  () => {
    it('signs in through the pool when this is the only backend process, and closes it on stop', async () => {
      // One backend process on this host (the PostgreSQL default is one per core, which leaves no pool).
      const t = await startTestBackend({ workers: 1 });
      let stopped = false;
      try {
        const pool = t.backend.services.verifyPool;
        assert.ok(pool !== undefined, 'workers 1 on a multi-core host: the composition made a pool');
        const console = await TestConsole.enrol(t.url, t.admin);
        const { authenticator } = await enrolOperator(t.admin, console);
        const before = pool.stats.completed + pool.stats.inline;
        const result = await signIn(console, authenticator);
        assert.equal(result.status, 200, JSON.stringify(result.body));
        // A lone sign-in is verified on the event loop (no other verification in flight), by the pool.
        assert.ok(pool.stats.completed + pool.stats.inline > before, JSON.stringify(pool.stats));
        // A forged assertion is refused with the same code the in-thread check gives.
        const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
        const forged = authenticator.assert(options);
        forged.response.signature = Buffer.from('not a signature').toString('base64url');
        const refused = await console.request('POST', '/v1/sign-in/verify', { response: forged });
        assertError(refused, 400, 'WEBAUTHN_VERIFICATION_FAILED');
        await t.stop();
        stopped = true;
        // Closed with the backend: a late job is refused, not run.
        await assert.rejects(
          pool.verifyAuthentication({ ...forgedOpts(forged), expectedChallenge: options.challenge as string }),
          (error: Error & { code?: string }) => error.code === 'SHUTTING_DOWN',
        );
      } finally {
        if (!stopped) await t.stop();
      }
    });
  },
);

/** Library options for a response (what the backend would pass), for a job sent to a closed pool. */
function forgedOpts(response: Json): Json {
  return {
    response,
    expectedOrigin: [TEST_ORIGIN],
    expectedRPID: 'localhost',
    credential: { id: response.id, publicKey: new Uint8Array(1), counter: 0 },
  };
}
