import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommandRecord } from '../store/repositories.js';
import { LateConsolePort, type ConsolePort } from './console-port.js';

const command: CommandRecord = { id: 'cmd_1', consoleId: 'con_1', sessionId: 'ses_1', reason: 'r', createdAt: 0 };

function recordingChannel(): ConsolePort & { sent: string[]; delivered: string[] } {
  const sent: string[] = [];
  const delivered: string[] = [];
  return {
    sent,
    delivered,
    connectedConsoleIds: () => ['con_1'],
    isConnected: (id) => id === 'con_1',
    sendRaw: (id, data) => {
      sent.push(`${id}:${String(data)}`);
      return true;
    },
    disconnect: () => undefined,
    deliver: (c) => delivered.push(c.id),
  };
}

describe('LateConsolePort', () => {
  it('refuses loudly when a service pushes before a console channel is bound (no silent no-op)', () => {
    const port = new LateConsolePort();
    assert.throws(() => port.sendRaw('con_1', 'x'), /before a console channel was bound/);
    assert.throws(() => port.deliver(command), /before a console channel was bound/);
    assert.throws(() => [...port.connectedConsoleIds()], /before a console channel was bound/);
  });

  it('forwards pushes and commands to the bound channel', () => {
    const port = new LateConsolePort();
    const channel = recordingChannel();
    port.bind(channel);
    assert.equal(port.sendRaw('con_1', 'hello'), true);
    port.deliver(command);
    assert.deepEqual(channel.sent, ['con_1:hello']);
    assert.deepEqual(channel.delivered, ['cmd_1']);
    assert.deepEqual([...port.connectedConsoleIds()], ['con_1']);
  });

  it('binds one channel only', () => {
    const port = new LateConsolePort();
    port.bind(recordingChannel());
    assert.throws(() => port.bind(recordingChannel()), /already bound/);
  });
});
