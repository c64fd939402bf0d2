import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BATON_API, buildBatonApi, type BatonTransport } from './baton-api.js';
import { IPC_EVENTS, OPERATOR_UI_CHANNELS, type IpcChannel, type IpcEvent } from './ipc.js';

function recordingTransport() {
  const calls: { channel: IpcChannel; payload: unknown }[] = [];
  const subscribed: IpcEvent[] = [];
  const unsubscribed: IpcEvent[] = [];
  const transport: BatonTransport = {
    call: (channel, payload) => {
      calls.push({ channel, payload });
      return Promise.resolve({ ok: true, value: {} });
    },
    on: (event) => {
      subscribed.push(event);
      return () => unsubscribed.push(event);
    },
  };
  return { transport, calls, subscribed, unsubscribed };
}

describe('window.baton, built from one table (BATON_API)', () => {
  it('reaches every channel the operator UI may call, and every event main pushes', () => {
    const called = new Set<IpcChannel>(Object.values(BATON_API).flatMap((e) => ('call' in e ? [e.call] : [])));
    const heard = new Set<IpcEvent>(Object.values(BATON_API).flatMap((e) => ('event' in e ? [e.event] : [])));
    assert.deepEqual(
      [...OPERATOR_UI_CHANNELS].filter((c) => !called.has(c)),
      [],
    );
    assert.deepEqual(
      [...called].filter((c) => !OPERATOR_UI_CHANNELS.includes(c)),
      [],
      'no workspace channel',
    );
    assert.deepEqual(
      Object.keys(IPC_EVENTS).filter((e) => !heard.has(e as IpcEvent)),
      [],
    );
  });

  it('sends each call on its channel with the request its arguments name', async () => {
    const { transport, calls } = recordingTransport();
    const baton = buildBatonApi(transport);
    await baton.getStatus();
    await baton.enrolOperator('ABCD-EFGH');
    await baton.authorize('payment.approve');
    await baton.chooseAccount('8f14e45f-ceea-467f-a0e6-5a2c3b4d5e6f', null);
    await baton.answerCeremony({
      requestId: '8f14e45f-ceea-467f-a0e6-5a2c3b4d5e6f',
      outcome: 'cancelled',
      reason: 'x',
    });
    await baton.ready();
    assert.deepEqual(calls, [
      { channel: 'agent:get-status', payload: {} },
      { channel: 'operator:enrol', payload: { code: 'ABCD-EFGH' } },
      { channel: 'action:authorize', payload: { action: 'payment.approve' } },
      {
        channel: 'ceremony:account-chosen',
        payload: { requestId: '8f14e45f-ceea-467f-a0e6-5a2c3b4d5e6f', credentialId: null },
      },
      {
        channel: 'ceremony:answer',
        payload: { requestId: '8f14e45f-ceea-467f-a0e6-5a2c3b4d5e6f', outcome: 'cancelled', reason: 'x' },
      },
      { channel: 'ui:ready', payload: {} },
    ]);
  });

  it('subscribes each on… to its event and returns the unsubscribe', () => {
    const { transport, subscribed, unsubscribed } = recordingTransport();
    const baton = buildBatonApi(transport, true);
    const off = baton.onStatus(() => undefined);
    baton.onCeremonyRequest(() => undefined);
    off();
    assert.deepEqual(subscribed, ['agent:status', 'ceremony:request']);
    assert.deepEqual(unsubscribed, ['agent:status']);
    assert.equal(baton.development, true);
  });
});
