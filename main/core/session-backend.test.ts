import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { FakeAgentContext } from '../../test/helpers/fake-agent-context.js';
import type { ConsoleRuntime } from './console-runtime.js';
import type { AgentSession } from './session-manager.js';
import { refreshToken, sessionEndedLocally } from './session-backend.js';

const SESSION = {
  id: 'ses_1',
  operatorId: 'op_lu',
  level: 'verified',
  authTime: Date.UTC(2026, 10, 23, 8, 0, 0),
} as AgentSession;

describe('sessions on the backend', () => {
  let ctx: FakeAgentContext;
  /** What the backend answers the next call with. */
  let answer: () => Promise<unknown>;
  let calls: unknown[][];
  let sessionCalls: string[];

  beforeEach(() => {
    ctx = new FakeAgentContext();
    calls = [];
    sessionCalls = [];
    answer = () => Promise.resolve({ token: 'tok', tokenExpiresAt: 5, serverTime: 1 });
    // The client's request API is changing shape; the fake answers either spelling.
    const backend = (...args: unknown[]) => {
      calls.push(args);
      return answer();
    };
    const runtime = ctx.runtime as ConsoleRuntime;
    ctx.runtime = {
      ...runtime,
      client: { request: backend, call: backend },
      sessions: {
        tokenRefreshed: (id: string, token: string) => sessionCalls.push(`refreshed ${id} ${token}`),
        tokenRefreshFailed: (id: string) => sessionCalls.push(`failed ${id}`),
        tokenRefused: (id: string) => sessionCalls.push(`refused ${id}`),
      },
    } as unknown as ConsoleRuntime;
  });

  function goOnline(): void {
    ctx.sync.connect();
    ctx.sync.opened();
    ctx.sync.welcomed({ policyVersion: 0, policyHash: '', revocationEpoch: 0, flushTo: 0 });
    ctx.sync.checkCaughtUp({ policyVersion: 0, policyHash: undefined, revocationEpoch: 0, ackedSeq: 0 });
    assert.equal(ctx.sync.connection, 'online');
  }

  test('offline, a token refresh waits for the backend', async () => {
    await refreshToken(ctx, 'ses_1');
    assert.equal(calls.length, 0);
    assert.deepEqual(sessionCalls, []);
  });

  test('online, the fresh token goes to the session', async () => {
    goOnline();
    await refreshToken(ctx, 'ses_1');
    assert.equal(calls.length, 1);
    assert.deepEqual(sessionCalls, ['refreshed ses_1 tok']);
  });

  test('a refusal leaves the session without a token; a passing fault is retried', async () => {
    goOnline();
    answer = () => Promise.reject(new BatonError('OPERATOR_REVOKED', 'revoked'));
    await refreshToken(ctx, 'ses_1');
    answer = () => Promise.reject(new BatonError('BACKEND_UNREACHABLE', 'down'));
    await refreshToken(ctx, 'ses_1');
    answer = () => Promise.reject(new Error('socket hang up'));
    await refreshToken(ctx, 'ses_1');
    assert.deepEqual(sessionCalls, ['refused ses_1', 'failed ses_1', 'failed ses_1']);
  });

  test('offline, a session that ends here is journaled with its reason', () => {
    sessionEndedLocally(ctx, SESSION, 'expired', 'lifetime');
    sessionEndedLocally(ctx, SESSION, 'ended', 'idle-timeout');
    assert.equal(calls.length, 0);
    assert.deepEqual(
      ctx.outbox.emitted.map((e) => [e.type, e.reasons]),
      [
        ['session-expired', ['lifetime']],
        ['session-ended', ['idle-timeout']],
      ],
    );
    assert.deepEqual(ctx.outbox.emitted[0]?.subject, { operator: 'op_lu', session: 'ses_1', console: 'con_1' });
  });

  test('online, the backend ends it (and records it); unreachable, it is journaled instead', async () => {
    goOnline();
    answer = () => Promise.resolve({});
    sessionEndedLocally(ctx, SESSION, 'ended', 'operator-signed-out');
    await ctx.clock.advance(0);
    assert.equal(calls.length, 1);
    assert.ok(JSON.stringify(calls[0]).includes('"reason":"sign-out"'));
    assert.equal(ctx.outbox.emitted.length, 0);
    answer = () => Promise.reject(new BatonError('BACKEND_UNREACHABLE', 'down'));
    sessionEndedLocally(ctx, SESSION, 'ended', 'idle-timeout');
    await ctx.clock.advance(0);
    assert.ok(JSON.stringify(calls[1]).includes('"reason":"idle-timeout"'));
    assert.deepEqual(ctx.journaled('session-ended')[0]?.reasons, ['idle-timeout']);
  });

  test('a session the backend already ended adds nothing to the journal', async () => {
    goOnline();
    answer = () => Promise.reject(new BatonError('SESSION_NOT_ACTIVE', 'gone'));
    sessionEndedLocally(ctx, SESSION, 'expired', 'lifetime');
    await ctx.clock.advance(0);
    assert.ok(JSON.stringify(calls[0]).includes('"reason":"expired"'));
    assert.equal(ctx.outbox.emitted.length, 0);
  });
});
