import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { CeremonyBroker } from '../../main/core/ceremony-broker.js';
import { IpcDispatcher } from '../../main/core/ipc-dispatcher.js';
import { withAgentConsole } from '../helpers/agent-rig.js';
import type { Json } from '../helpers/backend-harness.js';
import { FakeClock } from '../helpers/fake-clock.js';

/**
 * Issue 14, break-glass marks: a break-glass session reads as what it is wherever the console shows
 * or hands out its assurance: the status the operator UI renders, the workspace's assurance (the
 * preload's `getAssurance`), and the console assurance token itself (`break_glass: true`).
 */
describe('a break-glass session is marked in the agent’s status, the workspace’s assurance and its console token', () => {
  const f = withAgentConsole('branch-kiosk', ['Ada Teller']);

  test('redeemed with IT’s one-time code: marked everywhere; a key’s sign-in is not', async () => {
    const { agent, rig, port } = f;
    const admin = rig.backend.admin;
    const current = (await admin.ok('GET', '/v1/admin/policy')) as Json;
    const published = (await admin.ok('POST', '/v1/admin/policy', {
      baseVersion: current.version,
      policy: {
        ...current.policy,
        breakGlass: { lifetimeSeconds: 900, actions: ['customer.view'], maxPerOperatorPerDay: 1, maxPerSitePerDay: 5 },
      },
    })) as Json;
    await rig.until(agent, (s) => s.policyVersion === published.version, 'the new policy');
    const identity = agent.status.identity;
    assert.equal(identity.kind, 'enrolled');
    const { operator } = (await admin.ok('POST', '/v1/admin/operators', { displayName: 'Fay Forgetful' })) as Json;
    const { code } = (await admin.ok('POST', '/v1/admin/break-glass/codes', {
      operatorId: operator.id,
      consoleId: identity.consoleId,
      reason: 'key left at home',
    })) as Json;

    const { session, breakGlass } = await agent.breakGlassRedeem(operator.id as string, code as string);
    assert.equal(breakGlass.method, 'admin-code');
    assert.match(breakGlass.approvedBy, /^admin:/);

    // The status the operator UI renders: the session in front carries its terms.
    const front = agent.status.front;
    assert.equal(front?.id, session.id);
    assert.deepEqual(front?.breakGlass, breakGlass);

    // The workspace's assurance says so too: it must not take the session for a key's sign-in.
    const dispatcher = new IpcDispatcher(agent, new CeremonyBroker(() => undefined, new FakeClock()));
    const assurance = await dispatcher.dispatch(
      'workspace:get-assurance',
      {},
      { kind: 'workspace', sessionId: session.id, origin: 'https://teller.bank.example' },
    );
    assert.ok(assurance.ok, JSON.stringify(assurance));
    assert.deepEqual((assurance.value as { breakGlass?: unknown }).breakGlass, breakGlass);

    // The console assurance token carries the claim, as the session's events and action tokens do.
    assert.equal(decodeJwt(agent.frontToken ?? '').break_glass, true);

    // Ada taps her own key: her session, unmarked, in status, assurance and token.
    const ada = f.ops[0];
    assert.ok(ada !== undefined);
    port.tap(ada.authenticator);
    const mine = await agent.tapIn();
    assert.equal(agent.status.front?.breakGlass, undefined);
    const hers = await dispatcher.dispatch(
      'workspace:get-assurance',
      {},
      { kind: 'workspace', sessionId: mine.id, origin: 'https://teller.bank.example' },
    );
    assert.ok(hers.ok);
    assert.equal((hers.value as { breakGlass?: unknown }).breakGlass, undefined);
    assert.equal(decodeJwt(agent.frontToken ?? '').break_glass, undefined);
    // Fay's session waits, still marked.
    assert.deepEqual(agent.status.sessions.find((s) => s.id === session.id)?.breakGlass, breakGlass);
  });

  test('every event the agent journals about the break-glass session carries reason break-glass; a key’s do not', async () => {
    const { agent, rig, port } = f;
    const admin = rig.backend.admin;
    const identity = agent.status.identity;
    assert.equal(identity.kind, 'enrolled');
    const { operator } = (await admin.ok('POST', '/v1/admin/operators', { displayName: 'Gus Keyless' })) as Json;
    const { code } = (await admin.ok('POST', '/v1/admin/break-glass/codes', {
      operatorId: operator.id,
      consoleId: identity.consoleId,
      reason: 'key left at home',
    })) as Json;
    const { session } = await agent.breakGlassRedeem(operator.id as string, code as string);
    agent.lock(); // session-locked, journaled by the agent
    const ada = f.ops[0];
    assert.ok(ada !== undefined);
    port.tap(ada.authenticator);
    const mine = await agent.tapIn(); // the backend's sign-in; Ada's session-switched, away from Gus's
    agent.lock(); // Ada's own lock: no mark
    await rig.until(agent, (s) => s.connection === 'online' && s.outbox?.pending === 0, 'the journal flushed');

    const fromConsole = (e: { origin: string }) => e.origin === identity.consoleId;
    const gus = (await rig.events({ session: session.id })).filter(fromConsole);
    const locked = gus.find((e) => e.type === 'session-locked');
    assert.deepEqual(locked?.reasons, ['operator-locked', 'break-glass']);
    // The backend's own record of that lock (its session-suspended) is marked as well.
    const suspended = (await rig.events({ session: session.id, type: 'session-suspended' })).filter(
      (e) => e.origin === 'backend',
    );
    assert.ok(suspended.length > 0);
    for (const e of suspended) assert.ok(e.reasons.includes('break-glass'), JSON.stringify(e.reasons));
    const switched = (await rig.events({ session: mine.id })).filter(fromConsole);
    const away = switched.find((e) => e.type === 'session-switched' && e.detail?.fromSession === session.id);
    assert.ok(away?.reasons.includes('break-glass'), JSON.stringify(away?.reasons));
    const adaLocked = switched.filter((e) => e.type === 'session-locked');
    assert.ok(adaLocked.length > 0);
    for (const e of adaLocked) assert.deepEqual(e.reasons, ['operator-locked']);
    // The backend took them in (its chain check and the console's event schema passed them).
    const report = (await admin.ok('GET', `/v1/admin/events/verify?origin=${identity.consoleId}`)) as Json;
    assert.equal(report.intact, true, JSON.stringify(report));
  });
});
