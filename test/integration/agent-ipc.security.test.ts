import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IpcResult } from '../../shared/ipc.js';
import { CeremonyBroker } from '../../main/core/ceremony-broker.js';
import { IpcDispatcher } from '../../main/core/ipc-dispatcher.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withAgentConsole, type RigOperator } from '../helpers/agent-rig.js';

function refused(result: IpcResult<unknown>, code: string): void {
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(!result.ok && result.error.code, code, JSON.stringify(result));
}

describe('the IPC dispatcher: what a compromised renderer or workspace can and cannot do', () => {
  const f = withAgentConsole('branch-kiosk', ['Nia', 'Oz']);
  const ui = { kind: 'operator-ui' } as const;

  function dispatcher() {
    return new IpcDispatcher(f.agent, new CeremonyBroker(() => undefined, new FakeClock()));
  }

  test('an unknown channel, a prototype name or a non-string channel is refused with NOT_FOUND', async () => {
    const d = dispatcher();
    for (const channel of ['agent:shutdown', 'constructor', '__proto__', 42, undefined]) {
      refused(await d.dispatch(channel, {}, ui), 'NOT_FOUND');
    }
  });

  test('arguments are checked before any work: extra fields, wrong types, bad action names', async () => {
    const d = dispatcher();
    refused(await d.dispatch('session:tap-in', { operator: 'someone-else' }, ui), 'SCHEMA_INVALID');
    refused(await d.dispatch('operator:enrol', { code: 42 }, ui), 'SCHEMA_INVALID');
    refused(await d.dispatch('action:authorize', { action: '../../etc' }, ui), 'SCHEMA_INVALID');
    refused(await d.dispatch('console:enrol', { token: 'x'.repeat(5000) }, ui), 'SCHEMA_INVALID');
    const result = await d.dispatch('action:authorize', { action: 'NOT AN ACTION' }, ui);
    assert.ok(!result.ok && /expected an action name/.test(result.error.message));
  });

  test('the status the UI receives carries no token, credential id or key', async () => {
    const { agent, port } = f;
    const nia = f.ops[0] as RigOperator;
    port.tap(nia.authenticator);
    await agent.tapIn();
    const token = agent.frontToken;
    assert.ok(token !== undefined && token.length > 20);
    const result = await dispatcher().dispatch('agent:get-status', {}, ui);
    assert.ok(result.ok);
    const text = JSON.stringify(result.value);
    assert.ok(!text.includes(token), 'no token');
    for (const id of nia.authenticator.credentials.keys()) assert.ok(!text.includes(id), 'no credential id');
  });

  test('workspaces reach only workspace channels, and only the one in front sees assurance or asks for step-up', async () => {
    const d = dispatcher();
    const front = f.agent.status.front;
    assert.ok(front !== undefined);
    const mine = { kind: 'workspace', sessionId: front.id, origin: 'https://teller.bank.example' } as const;
    const other = { kind: 'workspace', sessionId: 'ses_someone_else', origin: 'https://teller.bank.example' } as const;
    // The operator UI's powers are not a workspace's.
    refused(await d.dispatch('session:sign-out', {}, mine), 'NOT_FOUND');
    refused(await d.dispatch('agent:get-status', {}, mine), 'NOT_FOUND');
    refused(await d.dispatch('workspace:get-assurance', {}, ui), 'NOT_FOUND');

    const assurance = await d.dispatch('workspace:get-assurance', {}, mine);
    assert.ok(assurance.ok);
    assert.deepEqual(
      {
        operator: (assurance.value as { operatorName: string }).operatorName,
        level: (assurance.value as { level: string }).level,
      },
      { operator: 'Nia', level: front.level },
    );
    assert.deepEqual(await d.dispatch('workspace:get-assurance', {}, other), { ok: true, value: null });
    const stepUp = await d.dispatch('workspace:step-up', { action: 'customer.view' }, other);
    assert.ok(stepUp.ok);
    assert.equal((stepUp.value as { outcome: string }).outcome, 'refused');

    f.agent.lock();
    assert.deepEqual(
      await d.dispatch('workspace:get-assurance', {}, mine),
      { ok: true, value: null },
      'a locked workspace sees nothing',
    );
  });

  test('a page calling authorize in a loop is slowed down before it can fill the journal', async () => {
    const { agent, port } = f;
    const nia = f.ops[0] as RigOperator;
    port.tap(nia.authenticator);
    await agent.tapIn();
    const d = dispatcher();
    const before = agent.status.outbox?.lastSeq ?? 0;
    const results = await Promise.all(
      Array.from({ length: 200 }, () => d.dispatch('action:authorize', { action: 'customer.view' }, ui)),
    );
    const allowed = results.filter((r) => r.ok).length;
    const limited = results.filter((r) => !r.ok && r.error.code === 'RATE_LIMITED').length;
    assert.equal(allowed + limited, 200);
    assert.ok(allowed >= 20 && allowed <= 25, `a burst of about 20 goes through (${allowed})`);
    assert.ok((agent.status.outbox?.lastSeq ?? 0) - before <= 25, 'the journal grew by the burst only');
    // The workspace in front has its own allowance, untouched by the operator UI's loop.
    const mine = {
      kind: 'workspace',
      sessionId: agent.status.front?.id ?? '',
      origin: 'https://teller.bank.example',
    } as const;
    assert.ok((await d.dispatch('workspace:step-up', { action: 'customer.view' }, mine)).ok);
  });

  test('a ceremony answer nobody asked for is refused', async () => {
    refused(
      await dispatcher().dispatch(
        'ceremony:answer',
        { requestId: '1b4e28ba-2fa1-41d2-883f-0016d3cca427', outcome: 'ok', response: {} },
        ui,
      ),
      'CHALLENGE_UNKNOWN',
    );
  });
});

describe('the ceremony broker', () => {
  test('a ceremony resolves with the answer to its own request id, once', async () => {
    const pushed: { requestId: string; kind: string }[] = [];
    const broker = new CeremonyBroker((r) => pushed.push(r), new FakeClock());
    const pending = broker.getAssertion({ purpose: 'sign-in', options: { challenge: 'abc' } });
    assert.equal(pushed.length, 1);
    const id = pushed[0]?.requestId ?? '';
    broker.answer({ requestId: id, outcome: 'ok', response: { id: 'cred' } });
    assert.deepEqual(await pending, { id: 'cred' });
    assert.throws(() => broker.answer({ requestId: id, outcome: 'ok', response: {} }), /No ceremony is waiting/);
  });

  test('a cancelled or unanswered ceremony fails with CEREMONY_CANCELLED', async () => {
    const clock = new FakeClock();
    const pushed: { requestId: string }[] = [];
    const broker = new CeremonyBroker((r) => pushed.push(r), clock);
    const cancelled = broker.getAssertion({
      purpose: 'step-up',
      action: 'payment.approve',
      options: { challenge: 'x' },
    });
    broker.answer({ requestId: pushed[0]?.requestId ?? '', outcome: 'cancelled', reason: 'NotAllowedError' });
    await assert.rejects(cancelled, { code: 'CEREMONY_CANCELLED' });
    const unanswered = broker.createCredential({ operatorName: 'Nia', options: { challenge: 'y' } as never });
    const rejection = assert.rejects(unanswered, { code: 'CEREMONY_CANCELLED' });
    await clock.advance(90_000);
    await rejection;
  });
});
