import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { CLOSE_CODES } from '../../shared/protocol.js';
import type { CommandRecord } from '../store/repositories.js';
import { ConsoleConnections, sendData, type ConsoleSocket } from './console-connections.js';

const command: CommandRecord = {
  id: 'cmd_1',
  consoleId: 'con_1',
  sessionId: 'ses_1',
  reason: 'evicted-by-session-limit',
  createdAt: 0,
};

/** A real socket pair on loopback: the server side goes into the table, the client side is the console. */
describe('ConsoleConnections (the table the services push through)', () => {
  let server: WebSocketServer;
  let port: number;
  const accepted: WebSocket[] = [];

  before(async () => {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (socket) => accepted.push(socket));
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const socket of accepted) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  async function pair(): Promise<{ serverSide: WebSocket; consoleSide: WebSocket; received: unknown[] }> {
    const count = accepted.length;
    const consoleSide = new WebSocket(`ws://127.0.0.1:${port}`);
    const received: unknown[] = [];
    consoleSide.on('message', (data: Buffer) => received.push(JSON.parse(data.toString('utf8'))));
    await once(consoleSide, 'open');
    while (accepted.length === count) await new Promise((resolve) => setImmediate(resolve));
    return { serverSide: accepted[count]!, consoleSide, received };
  }

  async function roundTrip(consoleSide: WebSocket): Promise<void> {
    // A ping answered by the server side comes after every frame the server sent before it.
    consoleSide.ping();
    await once(consoleSide, 'pong');
  }

  it('with nobody connected a push reports "not sent" and a command waits in the store (no throw, no no-op pretending)', () => {
    const table = new ConsoleConnections();
    assert.equal(table.sendRaw('con_1', '{}'), false);
    assert.equal(table.sendCommand(command), false);
    assert.doesNotThrow(() => table.deliver(command));
    assert.deepEqual([...table.connectedConsoleIds()], []);
  });

  it('pushes nothing before hello, then the command to the console it names', async () => {
    const { serverSide, consoleSide, received } = await pair();
    const table = new ConsoleConnections();
    const connection: { id: string; socket: WebSocket; hello: unknown } = {
      id: 'c1',
      socket: serverSide,
      hello: undefined,
    };
    table.add('con_1', connection);
    assert.equal(table.isConnected('con_1'), true);
    assert.equal(table.sendCommand(command), false, 'not before hello');
    connection.hello = { type: 'hello' };
    assert.equal(table.sendCommand(command), true);
    assert.equal(table.sendCommand({ ...command, consoleId: 'con_2' }), false, 'another console is not connected here');
    await roundTrip(consoleSide);
    assert.deepEqual(received, [
      {
        type: 'command',
        commandId: 'cmd_1',
        command: 'end-session',
        sessionId: 'ses_1',
        reason: 'evicted-by-session-limit',
      },
    ]);
    consoleSide.close();
  });

  it('keeps the newest connection: a replaced one is returned to close, and removing it later leaves the newer one', async () => {
    const table = new ConsoleConnections();
    const first = await pair();
    const second = await pair();
    const older: ConsoleSocket = { id: 'old', socket: first.serverSide, hello: {} };
    const newer: ConsoleSocket = { id: 'new', socket: second.serverSide, hello: {} };
    assert.equal(table.add('con_1', older), undefined);
    assert.equal(table.add('con_1', newer), older);
    table.remove('con_1', older);
    assert.equal(table.get('con_1'), newer, "the old socket's close does not remove the newer connection");
    table.remove('con_1', newer);
    assert.equal(table.isConnected('con_1'), false);
    first.consoleSide.close();
    second.consoleSide.close();
  });

  it("a revocation tells the console, closes with its code, and reports receipt only on the console's close frame", async () => {
    const table = new ConsoleConnections();
    const { serverSide, consoleSide, received } = await pair();
    table.add('con_1', { id: 'c', socket: serverSide, hello: {} });
    const closed = once(consoleSide, 'close');
    let receipt = false;
    table.disconnect('con_1', 'revoked', () => (receipt = true));
    const [code] = (await closed) as [number];
    assert.equal(code, CLOSE_CODES.CONSOLE_REVOKED);
    assert.deepEqual(received, [
      { type: 'error', code: 'CONSOLE_REVOKED', message: 'This console has been revoked', fatal: true },
    ]);
    if (serverSide.readyState !== WebSocket.CLOSED) await once(serverSide, 'close');
    assert.equal(receipt, true, 'the console answered the close handshake');

    const dead = await pair();
    table.add('con_2', { id: 'd', socket: dead.serverSide, hello: {} });
    let deadReceipt = false;
    const serverClosed = once(dead.serverSide, 'close');
    table.disconnect('con_2', 'revoked', () => (deadReceipt = true));
    dead.consoleSide.terminate(); // the console vanished: no close frame from it
    await serverClosed;
    dead.serverSide.terminate();
    assert.equal(deadReceipt, false, 'no receipt without a close frame from the console');
  });
});

describe('sendData: a fan-out Buffer framed once and written as is', () => {
  async function pairOn(options: ConstructorParameters<typeof WebSocketServer>[0]) {
    const server = new WebSocketServer({ ...options, port: 0, host: '127.0.0.1' });
    await once(server, 'listening');
    const accepted = once(server, 'connection');
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const received: { text: string; isBinary: boolean }[] = [];
    client.on('message', (data: Buffer, isBinary: boolean) => received.push({ text: data.toString('utf8'), isBinary }));
    const [serverSide] = (await accepted) as [WebSocket];
    await once(client, 'open');
    const close = async () => {
      client.terminate();
      serverSide.terminate();
      await new Promise((resolve) => server.close(resolve));
    };
    return { serverSide, received, close };
  }

  it('delivers the exact text, as a text frame, for each header length (7-bit, 16-bit, 64-bit), without ws.send', async () => {
    const { serverSide, received, close } = await pairOn({ perMessageDeflate: false });
    try {
      let sends = 0;
      const send = serverSide.send.bind(serverSide);
      serverSide.send = ((...args: Parameters<WebSocket['send']>) => {
        sends++;
        send(...args);
      }) as WebSocket['send'];
      const texts = [20, 300, 70_000].map((n) => JSON.stringify({ type: 'revocation', pad: 'é'.repeat(n) }));
      for (const text of texts) {
        const payload = Buffer.from(text);
        assert.equal(sendData(serverSide, payload), true);
        assert.equal(sendData(serverSide, payload), true); // the same Buffer again: the cached frame
      }
      while (received.length < texts.length * 2) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        received,
        texts.flatMap((text) => [
          { text, isBinary: false },
          { text, isBinary: false },
        ]),
      );
      assert.equal(sends, 0, 'written pre-framed');
    } finally {
      await close();
    }
  });

  it('falls back to ws.send when a compression extension was negotiated', async () => {
    const { serverSide, received, close } = await pairOn({ perMessageDeflate: { threshold: 0 } });
    try {
      let sends = 0;
      const send = serverSide.send.bind(serverSide);
      serverSide.send = ((...args: Parameters<WebSocket['send']>) => {
        sends++;
        send(...args);
      }) as WebSocket['send'];
      const text = JSON.stringify({ type: 'revocation', pad: 'x'.repeat(500) });
      assert.equal(sendData(serverSide, Buffer.from(text)), true);
      while (received.length < 1) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(received, [{ text, isBinary: false }]);
      assert.equal(sends, 1);
    } finally {
      await close();
    }
  });
});
