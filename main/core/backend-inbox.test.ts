import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import type { RevocationItem, WelcomeMessage } from '../../shared/protocol.js';
import { FakeAgentContext, policyMessage } from '../../test/helpers/fake-agent-context.js';
import { BackendInbox, closeReason } from './backend-inbox.js';
import { ConsoleLifecycle } from './console-lifecycle.js';
import { hashPolicy } from './policy-hash.js';

function welcome(extra: Partial<WelcomeMessage> = {}): WelcomeMessage {
  return {
    type: 'welcome',
    consoleId: 'con_1',
    channel: 'branch-kiosk',
    ackedSeq: 0,
    lastHash: 'genesis',
    serverTime: 0,
    heartbeatSeconds: 15,
    policyVersion: 0,
    policyHash: hashPolicy(DEFAULT_POLICY),
    revocationEpoch: 0,
    ...extra,
  };
}

function revocation(kind: RevocationItem['kind'], targetId: string, epoch = 1): RevocationItem {
  return { epoch, kind, targetId, operatorId: null, reason: `${kind} revoked`, at: 0 };
}

describe('BackendInbox', () => {
  let ctx: FakeAgentContext;
  let inbox: BackendInbox;
  let control: string[];

  beforeEach(() => {
    ctx = new FakeAgentContext();
    control = [];
    const lifecycle = new ConsoleLifecycle(ctx, {
      boot: () => control.push('boot'),
      shutdown: () => {
        control.push('shutdown');
        ctx.runtime = undefined;
        ctx.sync.stop();
        return Promise.resolve();
      },
    });
    inbox = new BackendInbox(ctx, lifecycle);
    ctx.sync.connect();
    inbox.opened();
  });

  test('a welcome with nothing to catch up on puts the console online and journals agent-online', () => {
    inbox.message(welcome());
    assert.equal(ctx.sync.connection, 'online');
    assert.deepEqual(ctx.clientCalls, ['welcomed 15']);
    assert.deepEqual(ctx.journaled('agent-online')[0]?.reasons, ['started']);
    assert.deepEqual(ctx.sessions.calls, ['connectionRestored', 'scheduleToken']);
    assert.deepEqual(ctx.challengesAsked, [0], 'the next tap’s challenge is asked for once caught up');
  });

  test('an acknowledgement while online asks for no challenge: one arrives mid-tap, after the held one was taken', async () => {
    inbox.message(welcome());
    await ctx.clock.advance(0);
    assert.equal((await ctx.readyChallenge.take(0)).challenge, 'ahead-1'); // a tap began
    await ctx.record({ type: 'policy-decision', subject: {}, outcome: 'allow', reasons: [] });
    await ctx.clock.advance(0);
    const changes = ctx.changes;
    inbox.message({ type: 'events-ack', upToSeq: ctx.outbox.lastSeq, findings: [] });
    assert.ok(ctx.changes > changes, 'the acknowledgement was applied');
    assert.equal(ctx.sync.connection, 'online');
    assert.deepEqual(ctx.challengesAsked, [0]);
  });

  test('stays syncing until the announced policy and revocations are applied and the backlog is acknowledged', () => {
    void ctx.record({ type: 'policy-decision', subject: {}, outcome: 'allow', reasons: [] });
    inbox.message(welcome({ policyVersion: 2, revocationEpoch: 3 }));
    assert.equal(ctx.sync.connection, 'syncing');
    inbox.message(policyMessage(2));
    assert.equal(ctx.sync.connection, 'syncing', 'revocations not applied yet');
    assert.deepEqual(ctx.challengesAsked, [], 'no challenge is asked for before the console has caught up');
    inbox.message({ type: 'revocation', epoch: 3, items: [] });
    assert.equal(ctx.sync.connection, 'syncing', 'backlog not acknowledged yet');
    const sentUpTo = ctx.outbox.lastSeq;
    inbox.message({ type: 'events-ack', upToSeq: sentUpTo, findings: [] });
    assert.equal(ctx.sync.connection, 'online');
    assert.deepEqual(ctx.challengesAsked, [2], 'asked for under the policy just applied');
    assert.deepEqual(
      ctx.sent.filter((m) => m.type === 'ack'),
      [
        { type: 'ack', of: 'policy', version: 2 },
        { type: 'ack', of: 'revocation', epoch: 3 },
      ],
    );
  });

  test('ahead of a restored backend: takes its epoch and ends the sessions of the catch-up before it is online', () => {
    ctx.memoryIdentity.revocationEpoch = 1000; // applied before IT restored the backend's database from a backup
    inbox.message(welcome({ revocationEpoch: 955 }));
    assert.equal(ctx.memoryIdentity.revocationEpoch, 1000, 'kept until the catch-up is applied: a drop asks again');
    assert.equal(ctx.sync.connection, 'syncing', 'not online before the catch-up is applied');
    assert.deepEqual(ctx.sessions.calls, [], 'the offline cap does not start over yet');
    inbox.message({ type: 'revocation', epoch: 955, items: [revocation('operator', 'op_gone', 953)] });
    assert.deepEqual(
      ctx.sessions.revoked.map((i) => i.targetId),
      ['op_gone'],
    );
    assert.deepEqual(ctx.sent.at(-1), { type: 'ack', of: 'revocation', epoch: 955 });
    assert.equal(ctx.memoryIdentity.revocationEpoch, 955, 'the next hello asks for what follows the store’s epoch');
    assert.equal(ctx.sync.connection, 'online');
  });

  test('ahead of a restored backend, a catch-up in parts: online, and the store’s epoch taken, only after the last', () => {
    ctx.memoryIdentity.revocationEpoch = 3000;
    inbox.message(welcome({ revocationEpoch: 2600 }));
    inbox.message({ type: 'revocation', epoch: 1500, items: [revocation('operator', 'op_a', 1500)] });
    assert.equal(ctx.sync.connection, 'syncing', 'a part is not the end');
    assert.equal(ctx.memoryIdentity.revocationEpoch, 3000, 'a drop now says the same hello and is caught up again');
    inbox.message({ type: 'revocation', epoch: 2600, items: [revocation('operator', 'op_b', 2590)] });
    assert.equal(ctx.memoryIdentity.revocationEpoch, 2600);
    assert.equal(ctx.sync.connection, 'online');
    assert.deepEqual(
      ctx.sessions.revoked.map((i) => i.targetId),
      ['op_a', 'op_b'],
    );
  });

  test('ahead of a restored backend, a drop before the catch-up: the remembered epoch stays, so the next hello is ahead again', () => {
    ctx.memoryIdentity.revocationEpoch = 1000;
    inbox.message(welcome({ revocationEpoch: 955 }));
    inbox.opened(); // the socket dropped and a new one opened before the catch-up came
    assert.equal(ctx.memoryIdentity.revocationEpoch, 1000);
  });

  test('ahead of a backend whose store holds no revocation: takes its epoch 0 and is online at once', () => {
    ctx.memoryIdentity.revocationEpoch = 7;
    inbox.message(welcome({ revocationEpoch: 0 }));
    assert.equal(ctx.memoryIdentity.revocationEpoch, 0);
    assert.equal(ctx.sync.connection, 'online');
  });

  test('behind the backend: keeps its epoch and waits for the catch-up as ever', () => {
    ctx.memoryIdentity.revocationEpoch = 5;
    inbox.message(welcome({ revocationEpoch: 9 }));
    assert.equal(ctx.memoryIdentity.revocationEpoch, 5);
    assert.equal(ctx.sync.connection, 'syncing');
    inbox.message({ type: 'revocation', epoch: 9, items: [] });
    assert.equal(ctx.sync.connection, 'online');
  });

  test('an events-ack before the welcome drops nothing from the journal', () => {
    void ctx.record({ type: 'policy-decision', subject: {}, outcome: 'allow', reasons: [] });
    inbox.message({ type: 'events-ack', upToSeq: 1, findings: [] });
    assert.equal(ctx.outbox.ackedSeq, 0);
  });

  test('a policy whose content does not match its hash is neither applied nor acknowledged', () => {
    const forged = {
      ...policyMessage(5),
      hash: hashPolicy({ ...DEFAULT_POLICY, agent: { ...DEFAULT_POLICY.agent, heartbeatSeconds: 99 } }),
    };
    assert.throws(
      () => inbox.message(forged),
      (error: BatonError) => error.code === 'BACKEND_PROTOCOL_ERROR',
    );
    assert.equal(ctx.memoryIdentity.policy, undefined);
    assert.equal(ctx.sent.length, 0);
  });

  test('a new policy is remembered, sets the outbox cap and re-evaluates the sessions', () => {
    const policy = { ...DEFAULT_POLICY, agent: { ...DEFAULT_POLICY.agent, outboxMaxEvents: 1234 } };
    inbox.message(policyMessage(4, policy));
    assert.equal(ctx.memoryIdentity.policy?.version, 4);
    assert.equal(ctx.outbox.max, 1234);
    assert.ok(ctx.sessions.calls.includes('policyChanged'));
  });

  test('a welcome for another console is refused and the socket dropped', () => {
    inbox.message(welcome({ consoleId: 'con_other' }));
    assert.equal(ctx.notice?.code, 'BACKEND_PROTOCOL_ERROR');
    assert.deepEqual(ctx.clientCalls, ['drop']);
    assert.equal(ctx.sync.connection, 'syncing');
  });

  test('session revocations end their sessions and are acknowledged with the epoch', () => {
    inbox.message(welcome());
    inbox.message({ type: 'revocation', epoch: 9, items: [revocation('session', 'ses_1', 9)] });
    assert.deepEqual(
      ctx.sessions.revoked.map((i) => i.targetId),
      ['ses_1'],
    );
    assert.equal(ctx.memoryIdentity.revocationEpoch, 9);
    assert.deepEqual(ctx.sent.at(-1), { type: 'ack', of: 'revocation', epoch: 9 });
  });

  test('a revocation of this console stops everything and is not acknowledged', async () => {
    inbox.message(welcome());
    inbox.message({ type: 'revocation', epoch: 2, items: [revocation('console', 'con_1', 2)] });
    await ctx.clock.advance(0);
    assert.deepEqual(control, ['shutdown']);
    assert.equal(ctx.memoryIdentity.status.kind, 're-enrolment-required');
    assert.equal(ctx.notice?.code, 'CONSOLE_REVOKED');
    assert.equal(ctx.memoryIdentity.revocationEpoch, 0);
    assert.equal(ctx.sent.filter((m) => m.type === 'ack').length, 0);
  });

  test('a revocation of another console is not this console’s', () => {
    inbox.message({ type: 'revocation', epoch: 2, items: [revocation('console', 'con_other', 2)] });
    assert.deepEqual(control, []);
    assert.equal(ctx.memoryIdentity.status.kind, 'enrolled');
  });

  test('an end-session command ends the session and is acknowledged', () => {
    inbox.message({ type: 'command', commandId: 'cmd_1', command: 'end-session', sessionId: 'ses_1', reason: '' });
    assert.deepEqual(ctx.sessions.calls, ['endedByBackend ses_1 ended ended-by-backend']);
    assert.deepEqual(ctx.sent, [{ type: 'ack', of: 'command', commandId: 'cmd_1' }]);
  });

  test('an end-session command keeps its reason code; free text (an older backend) is a plain end, not kept', () => {
    const command = (commandId: string, sessionId: string, reason: string) =>
      inbox.message({ type: 'command', commandId, command: 'end-session', sessionId, reason });
    command('cmd_1', 'ses_1', 'ended-by-admin');
    command('cmd_2', 'ses_2', 'evicted-by-session-limit');
    command('cmd_3', 'ses_3', 'Shift over, see you tomorrow');
    assert.deepEqual(ctx.sessions.calls, [
      'endedByBackend ses_1 ended ended-by-admin',
      'endedByBackend ses_2 ended evicted-by-session-limit',
      'endedByBackend ses_3 ended ended-by-backend',
    ]);
    assert.equal(ctx.sent.length, 3, 'each is acknowledged');
  });

  test('an error message is shown with its code, or as a protocol error when the code is unknown', () => {
    inbox.message({ type: 'error', code: 'RATE_LIMITED', message: 'slow down', fatal: false });
    assert.equal(ctx.notice?.code, 'RATE_LIMITED');
    inbox.message({ type: 'error', code: 'NOT_A_CODE', message: 'what', fatal: false });
    assert.equal(ctx.notice?.code, 'BACKEND_PROTOCOL_ERROR');
  });

  test('a close goes offline, tells the sessions and journals agent-offline with its reason', async () => {
    inbox.message(welcome());
    await ctx.clock.advance(0);
    inbox.closed({ code: 1006, reason: '' });
    // The challenge asked for ahead on that connection is dropped: the next tap asks for its own.
    assert.equal((await ctx.readyChallenge.take(0)).challenge, 'ahead-2');
    assert.equal(ctx.sync.connection, 'offline');
    assert.ok(ctx.sessions.calls.includes('connectionLost'));
    const offline = ctx.journaled('agent-offline');
    assert.equal(offline.length, 1);
    assert.deepEqual(offline[0]?.reasons, ['connection-lost']);
  });

  test('close code 4003 or a CONSOLE_REVOKED refusal revokes the console', async () => {
    inbox.closed({ code: 4003, reason: 'revoked' });
    await ctx.clock.advance(0);
    assert.equal(ctx.memoryIdentity.status.kind, 're-enrolment-required');
    assert.equal(ctx.journaled('agent-offline').length, 0);
  });

  test('a CONSOLE_UNKNOWN refusal asks for re-enrolment', () => {
    inbox.closed({ code: 1008, reason: '', refused: new BatonError('CONSOLE_UNKNOWN', 'who?') });
    assert.deepEqual(control, ['shutdown']);
    assert.equal(ctx.sync.connection, 'stopped');
    assert.deepEqual(
      ctx.memoryIdentity.status.kind === 're-enrolment-required' && ctx.memoryIdentity.status.reason,
      'unknown-to-backend',
    );
  });

  test('close reasons name the cause', () => {
    assert.equal(closeReason({ code: 1001 }), 'backend-going-away');
    assert.equal(closeReason({ code: 1006 }), 'connection-lost');
    assert.equal(closeReason({ code: 4000 }), 'closed-4000');
    assert.equal(
      closeReason({ code: 1008, refused: new BatonError('CONSOLE_SIGNATURE_INVALID', 'x') }),
      'console-signature-invalid',
    );
  });
});
