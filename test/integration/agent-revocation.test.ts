import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentStatus } from '../../main/core/agent.js';
import { rejectsWithCode, withAgentConsole, type AgentRig, type RigOperator } from '../helpers/agent-rig.js';
import type { Json } from '../helpers/backend-harness.js';

const MINUTE = 60_000;

async function revoke(rig: AgentRig, kind: string, id: string): Promise<void> {
  await rig.backend.admin.ok('POST', `/v1/admin/${kind}/${encodeURIComponent(id)}/revoke`, { reason: 'test' });
}

async function storedSession(rig: AgentRig, id: string): Promise<Json> {
  const { sessions } = (await rig.backend.admin.ok('GET', '/v1/admin/sessions?limit=500')) as Json;
  return (sessions as Json[]).find((s) => s.id === id);
}

describe('agent core: revocation while connected', () => {
  const f = withAgentConsole('contact-centre', ['Gus', 'Hal', 'Ivy']);

  async function signIn(op: RigOperator) {
    f.port.tap(op.authenticator);
    return f.agent.tapIn();
  }

  test('a revoked session leaves the screen at once, whichever is in front', async () => {
    const { agent, rig } = f;
    const ops = f.ops;
    const [gus, hal] = ops as [RigOperator, RigOperator];
    const g = await signIn(gus);
    const h = await signIn(hal);
    // Revoke the suspended one, then the one in front.
    await revoke(rig, 'sessions', g.id);
    await rig.until(agent, (s) => !s.sessions.some((x) => x.id === g.id), 'suspended session removed');
    assert.equal(agent.status.front?.id, h.id, 'the one in front is untouched');
    await revoke(rig, 'sessions', h.id);
    const status = await rig.until(agent, (s) => s.sessions.length === 0, 'front session removed');
    assert.equal(status.front, undefined);
    assert.equal(status.locked, true, 'the lock screen covers the console');
  });

  test('revoking an operator ends their session; revoking a credential ends the session it opened', async () => {
    const { agent, port, rig } = f;
    const ops = f.ops;
    const [gus, hal, ivy] = ops as [RigOperator, RigOperator, RigOperator];
    const g = await signIn(gus);
    const h = await signIn(hal);
    const i = await signIn(ivy);
    await revoke(rig, 'operators', gus.id);
    await rig.until(agent, (s) => !s.sessions.some((x) => x.id === g.id), 'operator revocation applied');
    const halCredential = [...hal.authenticator.credentials.keys()][0] ?? '';
    await revoke(rig, 'credentials', halCredential);
    await rig.until(agent, (s) => !s.sessions.some((x) => x.id === h.id), 'credential revocation applied');
    assert.deepEqual(
      agent.status.sessions.map((s) => s.id),
      [i.id],
    );
    // The revoked operator's key no longer opens anything.
    port.tap(gus.authenticator);
    await rejectsWithCode(agent.tapIn(), 'OPERATOR_REVOKED');
    assert.equal(agent.status.notice?.code, 'OPERATOR_REVOKED');
  });

  test('an admin ending a session sends a command that ends it on the console at once', async () => {
    const { agent, rig } = f;
    const ops = f.ops;
    const ivy = ops[2] as RigOperator;
    const i = agent.status.sessions.find((s) => s.operatorId === ivy.id) ?? (await signIn(ivy));
    await rig.backend.admin.ok('POST', `/v1/admin/sessions/${i.id}/end`, { reason: 'shift over' });
    await rig.until(agent, (s) => !s.sessions.some((x) => x.id === i.id), 'end-session command applied');
    assert.equal((await storedSession(rig, i.id)).state, 'ended');
  });

  test('a revoked console stops, forgets its key and asks to be re-enrolled; a new token brings it back', async () => {
    const { agent, rig } = f;
    const consoleId = agent.status.identity.kind === 'enrolled' ? agent.status.identity.consoleId : '';
    await revoke(rig, 'consoles', consoleId);
    const status = await rig.until(agent, (s) => s.identity.kind !== 'enrolled', 'console revocation applied');
    assert.deepEqual(
      {
        kind: status.identity.kind,
        reason: status.identity.kind === 're-enrolment-required' && status.identity.reason,
      },
      { kind: 're-enrolment-required', reason: 'revoked' },
    );
    assert.equal(status.sessions.length, 0);
    assert.equal(status.connection, 'stopped');
    await rejectsWithCode(agent.tapIn(), 'CONSOLE_REENROLMENT_REQUIRED');

    await agent.enrolConsole(await rig.consoleToken('contact-centre'));
    const back = await rig.until(agent, (s) => s.connection === 'online', 'online after re-enrolment');
    assert.equal(back.identity.kind, 'enrolled');
    assert.notEqual(back.identity.kind === 'enrolled' && back.identity.consoleId, consoleId);
  });
});

describe('agent core: offline', () => {
  const f = withAgentConsole('contact-centre', ['Jo', 'Kai', 'Lu', 'Mo'], { proxy: true });

  test('offline: a suspended session resumes by a local check of the cached key; new sign-ins are refused', async () => {
    const { agent, port, rig, proxy } = f;
    assert.ok(proxy);
    const ops = f.ops;
    const [jo, kai, lu] = ops as [RigOperator, RigOperator, RigOperator];
    port.tap(jo.authenticator);
    const j = await agent.tapIn();
    port.tap(kai.authenticator);
    const k = await agent.tapIn();
    proxy.cut();
    await rig.until(agent, (s) => s.connection === 'offline', 'offline');

    // Lu has no session here: a new sign-in needs the backend.
    port.tap(lu.authenticator);
    await rejectsWithCode(agent.tapIn(), 'OFFLINE_SIGN_IN_REFUSED');
    assert.equal(agent.status.front?.id, k.id);

    port.tap(jo.authenticator);
    const resumed = await agent.tapIn();
    assert.equal(resumed.id, j.id, 'Jo is back in her own session');
    assert.equal(agent.status.front?.id, j.id);
    assert.equal(agent.status.sessions.find((s) => s.id === k.id)?.state, 'suspended');
    assert.equal(port.asked.at(-1)?.purpose, 'offline-resume');

    // The same assertion again: its challenge was single-use.
    port.tap(kai.authenticator);
    await agent.tapIn(); // Kai resumes (legitimately) …
    port.replayNext = port.answers.at(-2); // … then someone replays Jo's captured tap.
    await rejectsWithCode(agent.tapIn(), 'CHALLENGE_UNKNOWN');
    assert.equal(agent.status.front?.id, k.id, 'the replay changed nothing');
    assert.ok((agent.status.outbox?.pending ?? 0) > 0, 'events are queued while offline');
  });

  test('offline: past the offline grace even the operator\u2019s own session cannot be resumed', async () => {
    const { agent, port, rig } = f;
    const ops = f.ops;
    const kai = ops[1] as RigOperator;
    agent.lock();
    // contact-centre: offline grace 30 min, continuity 60 min.
    await rig.clock.advance(31 * MINUTE);
    assert.ok(agent.status.sessions.length > 0, 'still inside the continuity window');
    port.tap(kai.authenticator);
    await rejectsWithCode(agent.tapIn(), 'OFFLINE_RESUME_REFUSED');
    assert.equal(agent.status.front?.state, 'locked');
  });

  test('back online: a revocation made meanwhile applies before anything else, then the backlog lands', async () => {
    const { agent, rig, proxy } = f;
    assert.ok(proxy);
    const ops = f.ops;
    const [jo, kai] = ops as [RigOperator, RigOperator];
    const j = agent.status.sessions.find((s) => s.operatorId === jo.id);
    const k = agent.status.sessions.find((s) => s.operatorId === kai.id);
    assert.ok(j !== undefined && k !== undefined);
    await revoke(rig, 'operators', kai.id);

    const queuedOffline = agent.status.outbox?.lastSeq ?? 0;
    assert.ok((agent.status.outbox?.pending ?? 0) > 0);
    const seen: AgentStatus[] = [];
    const unsubscribe = agent.onStatus((s) => seen.push(s));
    proxy.restore();
    await rig.reconnect(agent);
    unsubscribe();

    assert.equal(
      agent.status.sessions.some((s) => s.id === k.id),
      false,
      'Kai’s session was revoked',
    );
    const onlineWithKai = seen.filter((s) => s.connection === 'online' && s.sessions.some((x) => x.id === k.id));
    assert.equal(onlineWithKai.length, 0, 'the console never counted itself online with the revoked session');
    const firstOnline = seen.find((s) => s.connection === 'online');
    assert.ok(
      (firstOnline?.outbox?.ackedSeq ?? 0) >= queuedOffline,
      'everything journaled offline was acknowledged before the console counted itself online',
    );
    await rig.until(agent, (s) => s.outbox?.pending === 0, 'outbox drained');

    // The backend followed what happened offline: Jo's offline resume, the refusals, the offline/online marks.
    const resumed = await rig.events({ type: 'session-resumed', session: j.id });
    assert.ok(resumed.some((e) => e.reasons.includes('offline-grace')));
    const failed = await rig.events({ type: 'sign-in-failed' });
    assert.ok(failed.some((e) => e.reasons.includes('offline-sign-in-refused')));
    assert.ok(failed.some((e) => e.reasons.includes('challenge-unknown')));
    const offline = await rig.events({ type: 'agent-offline' });
    const online = await rig.events({ type: 'agent-online' });
    assert.ok(offline.length >= 1 && online.length >= 1);
    assert.equal((await storedSession(rig, k.id)).state, 'revoked');
  });
});
