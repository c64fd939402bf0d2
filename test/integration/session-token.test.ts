import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, type RigOperator, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import {
  TestConsole,
  assertError,
  withBackendAndConsole,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

const TOKEN_TTL_MS = 300_000; // branch-kiosk's tokenTtlSeconds

describe('POST /v1/sessions/:id/token', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let now = Date.now();
  withBackendAndConsole((b, c) => ((t = b), (kiosk = c)), {}, { clock: () => now });

  it('gives an active session a fresh token with the same auth_time and a later expiry', async () => {
    const { authenticator } = await enrolOperator(t.admin, kiosk);
    const signedIn = (await signIn(kiosk, authenticator)).body as Json;
    now += 200_000;
    const fresh = (await kiosk.ok('POST', `/v1/sessions/${signedIn.session.id as string}/token`, {})) as Json;
    assert.notEqual(fresh.token, signedIn.token);
    assert.equal(fresh.serverTime, now);
    assert.ok(fresh.tokenExpiresAt > now + TOKEN_TTL_MS - 1000 && fresh.tokenExpiresAt <= now + TOKEN_TTL_MS);
    const before = decodeJwt(signedIn.token as string);
    const after = decodeJwt(fresh.token as string);
    assert.equal(after.auth_time, before.auth_time, 'a refresh is not an authentication');
    assert.equal(after.sid, signedIn.session.id);
    assert.ok((after.exp ?? 0) > (before.exp ?? 0));
  });

  it('refuses a suspended (locked) session, an ended one, a revoked one and another console’s, with stable codes', async () => {
    const ada = await enrolOperator(t.admin, kiosk, { displayName: 'Ada' });
    const ben = await enrolOperator(t.admin, kiosk, { displayName: 'Ben' });
    const first = (await signIn(kiosk, ada.authenticator)).body as Json;
    const second = (await signIn(kiosk, ben.authenticator)).body as Json; // suspends Ada's
    const token = (id: string, from = kiosk) => from.request('POST', `/v1/sessions/${id}/token`, {});

    assertError(await token(first.session.id as string), 409, 'SESSION_NOT_ACTIVE');

    const other = await TestConsole.enrol(t.url, t.admin);
    assertError(await token(second.session.id as string, other), 404, 'SESSION_UNKNOWN');

    await t.admin.ok('POST', `/v1/admin/sessions/${second.session.id as string}/revoke`, { reason: 'test' });
    assertError(await token(second.session.id as string), 409, 'SESSION_NOT_ACTIVE');

    const third = (await signIn(kiosk, ada.authenticator)).body as Json;
    await kiosk.ok('POST', `/v1/sessions/${third.session.id as string}/end`, { reason: 'sign-out' });
    assertError(await token(third.session.id as string), 409, 'SESSION_NOT_ACTIVE');
    assertError(
      await kiosk.request('POST', `/v1/sessions/${third.session.id as string}/token`, { x: 1 }),
      400,
      'SCHEMA_INVALID',
    );
  });
});

describe('the agent keeps the workspace token fresh', () => {
  let rig: AgentRig;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;
  let ada: RigOperator;
  before(async () => {
    rig = await AgentRig.start();
    ({ agent, port } = await rig.agent());
    ada = await rig.operator(agent, port, 'Ada');
  });
  after(async () => {
    await rig.stop();
  });

  /**
   * Resolves when the agent's front token differs from `old` (the agent reports every change); the
   * refresh is a real HTTP round trip, so it is given 5 s of real time before the test fails.
   */
  function tokenChange(old: string | undefined): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error('the agent did not refresh the token'));
      }, 5000);
      const stop = agent.onStatus(() => {
        if (agent.frontToken !== old) {
          stop();
          clearTimeout(timer);
          resolve(agent.frontToken);
        }
      });
    });
  }

  it('refreshes the token before it expires, so the workspace never holds an expired one', async () => {
    port.tap(ada.authenticator);
    await agent.tapIn();
    const first = agent.frontToken;
    assert.ok(first !== undefined);
    const issued = decodeJwt(first);
    // Keep working (no idle lock) through three token lifetimes, checking every 10 s.
    let refreshes = 0;
    let current = first;
    for (let t = 0; t < 3 * TOKEN_TTL_MS; t += 10_000) {
      agent.noteActivity();
      const due = rig.clock.now() + 10_000 - (decodeJwt(current).iat ?? 0) * 1000 >= (TOKEN_TTL_MS * 2) / 3;
      const changed = due ? tokenChange(current) : undefined;
      await rig.clock.advance(10_000);
      if (changed !== undefined) {
        current = (await changed) ?? assert.fail('the token was dropped');
        refreshes++;
      }
      const token = agent.frontToken;
      assert.ok(token !== undefined, 'the workspace always has a token');
      const exp = (decodeJwt(token).exp ?? 0) * 1000;
      assert.ok(exp > rig.clock.now(), `the token handed out is not expired (exp ${exp}, now ${rig.clock.now()})`);
    }
    assert.ok(refreshes >= 4, `refreshed ${refreshes} times`);
    assert.equal(decodeJwt(current).auth_time, issued.auth_time);
    assert.equal(decodeJwt(current).sid, issued.sid);
  });

  it('a token the backend will not refresh (session revoked) is never handed out expired', async () => {
    const sessionId = agent.status.front?.id;
    assert.ok(sessionId !== undefined);
    // The backend ends the session but the console does not hear of it (no push reaches it here: the
    // refresh is refused first); the agent then holds no token rather than an expiring one.
    await rig.backend.admin.ok('POST', `/v1/admin/sessions/${sessionId}/revoke`, { reason: 'test' });
    for (let t = 0; t < TOKEN_TTL_MS + 10_000; t += 10_000) {
      agent.noteActivity();
      await rig.clock.advance(10_000);
      const token = agent.frontToken;
      if (token !== undefined) assert.ok((decodeJwt(token).exp ?? 0) * 1000 > rig.clock.now());
    }
    assert.equal(agent.frontToken, undefined);
  });
});
