import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { BatonError } from '../../../shared/errors.js';
import { FakeAgentContext } from '../../../test/helpers/fake-agent-context.js';
import type { AgentPhase } from '../agent-types.js';
import { SYNC_WAIT_MS } from '../sync-machine.js';
import { CeremonyGate } from './ceremony-gate.js';

describe('CeremonyGate', () => {
  let ctx: FakeAgentContext;
  let gate: CeremonyGate;

  beforeEach(() => {
    ctx = new FakeAgentContext();
    gate = new CeremonyGate(ctx);
  });

  test('shows the ceremony’s phase while it runs and idle after, clearing the last notice', async () => {
    ctx.notice = { code: 'ACTION_DENIED', message: 'earlier', at: 0 };
    const seen: AgentPhase[] = [];
    const result = await gate.run({ kind: 'signing-in', offline: false }, () => {
      seen.push(ctx.phase);
      assert.equal(ctx.notice, undefined);
      return Promise.resolve(7);
    });
    assert.equal(result, 7);
    assert.deepEqual(seen, [{ kind: 'signing-in', offline: false }]);
    assert.deepEqual(ctx.phase, { kind: 'idle' });
  });

  test('settle(): the status that shows the outcome already says idle, and no second push follows', async () => {
    const pushed: string[] = [];
    const changed = ctx.changed.bind(ctx);
    ctx.changed = () => {
      pushed.push(ctx.phase.kind);
      changed();
    };
    await gate.run({ kind: 'signing-in', offline: false }, (settle) => {
      settle();
      ctx.changed(); // the session brought to the front
      return Promise.resolve();
    });
    assert.deepEqual(pushed, ['signing-in', 'idle']);

    pushed.length = 0;
    await gate.run({ kind: 'signing-in', offline: false }, () => {
      ctx.changed();
      return Promise.resolve();
    });
    assert.deepEqual(pushed, ['signing-in', 'signing-in', 'idle']);
  });

  test('a ceremony begun after an earlier one settled keeps its phase when the earlier one ends', async () => {
    let finish: () => void = () => undefined;
    const first = gate.run({ kind: 'signing-in', offline: false }, async (settle) => {
      settle();
      await new Promise<void>((resolve) => (finish = resolve));
    });
    let finishSecond: () => void = () => undefined;
    const second = gate.run({ kind: 'enrolling-operator' }, () => new Promise<void>((r) => (finishSecond = r)));
    finish();
    await first;
    assert.deepEqual(ctx.phase, { kind: 'enrolling-operator' });
    finishSecond();
    await second;
    assert.deepEqual(ctx.phase, { kind: 'idle' });
  });

  test('refuses a second ceremony while one runs, without disturbing the first', async () => {
    let finish: () => void = () => undefined;
    const first = gate.run({ kind: 'enrolling-operator' }, () => new Promise<void>((resolve) => (finish = resolve)));
    await assert.rejects(
      gate.run({ kind: 'signing-in', offline: false }, () => Promise.resolve()),
      (error: BatonError) => error.code === 'CEREMONY_IN_PROGRESS',
    );
    assert.deepEqual(ctx.phase, { kind: 'enrolling-operator' });
    finish();
    await first;
    assert.deepEqual(ctx.phase, { kind: 'idle' });
  });

  test('a ceremony’s failure becomes the notice and the phase returns to idle', async () => {
    await assert.rejects(
      gate.run({ kind: 'enrolling-operator' }, () => Promise.reject(new BatonError('CEREMONY_CANCELLED', 'no tap'))),
      (error: BatonError) => error.code === 'CEREMONY_CANCELLED',
    );
    assert.equal(ctx.notice?.code, 'CEREMONY_CANCELLED');
    assert.deepEqual(ctx.phase, { kind: 'idle' });
  });

  test('an unexpected failure is shown as INTERNAL, never as its raw message', async () => {
    await assert.rejects(
      gate.run({ kind: 'enrolling-operator' }, () => Promise.reject(new Error('secret detail'))),
      (error: BatonError) => error.code === 'INTERNAL',
    );
    assert.equal(ctx.notice?.message, 'Something went wrong');
  });

  test('a tap while the console is still catching up waits, then is refused as AGENT_SYNCING', async () => {
    ctx.sync.connect();
    ctx.sync.opened();
    let outcome: string | undefined;
    void gate.settled().then(
      (connection) => (outcome = connection),
      (error: BatonError) => (outcome = error.code),
    );
    await ctx.clock.advance(SYNC_WAIT_MS - 1);
    assert.equal(outcome, undefined);
    await ctx.clock.advance(1);
    assert.equal(outcome, 'AGENT_SYNCING');
    assert.equal(ctx.notice?.code, 'AGENT_SYNCING');
  });

  test('a tap while offline proceeds offline; one that needs the backend is refused', async () => {
    ctx.sync.connect();
    ctx.sync.closed();
    assert.equal(await gate.settled(), 'offline');
    await assert.rejects(gate.whenOnline(), (error: BatonError) => error.code === 'BACKEND_UNREACHABLE');
  });
});
