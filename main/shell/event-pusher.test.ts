import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { AgentStatusView } from '../../shared/ipc.js';
import { EventPusher, type PushTarget } from './event-pusher.js';

function status(connection: AgentStatusView['connection']): AgentStatusView {
  return {
    identity: { kind: 'unenrolled' },
    connection,
    phase: { kind: 'idle' },
    locked: true,
    sessions: [],
    policyVersion: 0,
  };
}

function ceremony() {
  return { requestId: randomUUID(), kind: 'get', purpose: 'sign-in', options: { challenge: 'abc' } } as const;
}

function window(): PushTarget & { sent: { channel: string; payload: unknown }[]; destroyed: boolean } {
  const sent: { channel: string; payload: unknown }[] = [];
  return {
    sent,
    destroyed: false,
    isDestroyed() {
      return this.destroyed;
    },
    send(channel, payload) {
      sent.push({ channel, payload });
    },
  };
}

describe('EventPusher', () => {
  test('holds pushes until the window is ready, then delivers them in order, with only the newest status', () => {
    const logs: string[] = [];
    const pusher = new EventPusher((message) => logs.push(message));
    const w = window();
    assert.equal(pusher.push('agent:status', status('connecting')), 'queued', 'no window yet');
    pusher.attach(w);
    const request = ceremony();
    assert.equal(pusher.push('ceremony:request', request), 'queued', 'window not loaded yet');
    assert.equal(pusher.push('agent:status', status('online')), 'queued');
    assert.equal(w.sent.length, 0);
    pusher.markReady();
    assert.deepEqual(
      w.sent.map((s) => s.channel),
      ['ceremony:request', 'agent:status'],
    );
    assert.equal((w.sent[1]?.payload as AgentStatusView).connection, 'online', 'the stale status was superseded');
    assert.equal(pusher.push('agent:status', status('offline')), 'sent');
    assert.deepEqual(logs, []);
  });

  test('a payload that fails its schema is never sent; it is counted and logged without its content', () => {
    const details: Record<string, unknown>[] = [];
    const pusher = new EventPusher((_message, detail) => details.push(detail));
    const w = window();
    pusher.attach(w);
    pusher.markReady();
    const leaky = { ...status('online'), token: 'eyJsecret-token' };
    assert.equal(pusher.push('agent:status', leaky), 'refused');
    assert.equal(pusher.push('ceremony:request', { requestId: 'not-a-uuid', operatorName: 'Ada Secret' }), 'refused');
    assert.deepEqual(w.sent, []);
    assert.equal(pusher.counts.schemaFailures, 2);
    assert.equal(details.length, 2);
    assert.equal(details[0]?.event, 'agent:status');
    const logged = JSON.stringify(details);
    assert.ok(!logged.includes('eyJsecret-token') && !logged.includes('Ada Secret'), 'no payload in the log');
  });

  test('the queue is bounded: past it the oldest waiting push is dropped, counted and logged', () => {
    const logs: string[] = [];
    const pusher = new EventPusher((message) => logs.push(message), 3);
    const requests = [ceremony(), ceremony(), ceremony(), ceremony()];
    for (const r of requests) pusher.push('ceremony:request', r);
    assert.equal(pusher.queued, 3);
    assert.equal(pusher.counts.dropped, 1);
    assert.equal(logs.length, 1);
    const w = window();
    pusher.attach(w);
    pusher.markReady();
    assert.deepEqual(
      w.sent.map((s) => (s.payload as { requestId: string }).requestId),
      requests.slice(1).map((r) => r.requestId),
    );
  });

  test('a destroyed or reloading window makes pushes wait for the next one', () => {
    const pusher = new EventPusher(() => undefined);
    const first = window();
    pusher.attach(first);
    pusher.markReady();
    first.destroyed = true;
    assert.equal(pusher.push('agent:status', status('online')), 'queued');
    const second = window();
    pusher.attach(second);
    pusher.push('agent:status', status('offline'));
    pusher.markReady();
    assert.deepEqual(
      second.sent.map((s) => (s.payload as AgentStatusView).connection),
      ['offline'],
    );
    pusher.notReady();
    assert.equal(pusher.push('agent:status', status('online')), 'queued');
  });
});
