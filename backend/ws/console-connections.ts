import { WebSocket } from 'ws';
import { CLOSE_CODES, isEndSessionReason, type BackendMessage } from '../../shared/protocol.js';
import type { ConsolePort } from '../services/console-port.js';
import type { CommandRecord } from '../store/repositories.js';

/** What the table needs of a console's connection (the console channel's connections carry more). */
export interface ConsoleSocket {
  /** This connection's id, cluster-wide. */
  readonly id: string;
  readonly socket: WebSocket;
  /** Set once the console has said hello: only then is anything pushed to it. */
  readonly hello: unknown;
  /**
   * Set while the answers to its hello (welcome, policy, catch-up, commands) are being sent: a push
   * waits here, in order, and follows them (`flushHeld`). Sent before its catch-up, a revocation
   * committed after the catch-up's read would raise the console's epoch over what the catch-up brings:
   * a console that dropped then would never be sent the revocations in between.
   */
  held?: (string | Buffer)[] | undefined;
}

/** The code `ws` reports when a socket closed without a close frame from the peer. */
export const ABNORMAL_CLOSURE = 1006;

/**
 * This node's console connections, one per console: the table the services push through (it is
 * their `ConsolePort`) and the console channel fills. It is built first and given to both at
 * construction (`backend/server.ts`), so nothing is bound after the fact and there is no state in
 * which a push has nowhere to go: with nobody connected, a push reports "not sent" and a command
 * waits in the store for the console's next hello.
 */
export class ConsoleConnections<C extends ConsoleSocket = ConsoleSocket> implements ConsolePort {
  private readonly byConsole = new Map<string, C>();

  get(consoleId: string): C | undefined {
    return this.byConsole.get(consoleId);
  }

  /** Adds a console's connection; returns the one it replaces (the caller closes it). */
  add(consoleId: string, connection: C): C | undefined {
    const previous = this.byConsole.get(consoleId);
    this.byConsole.set(consoleId, connection);
    return previous;
  }

  /** Removes a console's connection if it is still this one (a newer one may have replaced it). */
  remove(consoleId: string, connection: C): void {
    if (this.byConsole.get(consoleId) === connection) this.byConsole.delete(consoleId);
  }

  values(): IterableIterator<C> {
    return this.byConsole.values();
  }

  get size(): number {
    return this.byConsole.size;
  }

  connectedConsoleIds(): Iterable<string> {
    return this.byConsole.keys();
  }

  isConnected(consoleId: string): boolean {
    return this.byConsole.has(consoleId);
  }

  sendRaw(consoleId: string, data: string | Buffer): boolean {
    const connection = this.byConsole.get(consoleId);
    if (connection === undefined || connection.hello === undefined) return false;
    if (connection.held !== undefined) {
      connection.held.push(data);
      return connection.socket.readyState === WebSocket.OPEN;
    }
    return sendData(connection.socket, data);
  }

  /**
   * Tells the console it is revoked and closes its socket. `onReceived` runs once the console has
   * answered the close handshake: a close frame from it (echoing ours, or its own as it stops on
   * reading the revocation) comes after everything it read; 1006 means it never sent one.
   */
  disconnect(consoleId: string, _reason: 'revoked', onReceived?: () => void): void {
    const connection = this.byConsole.get(consoleId);
    if (connection === undefined) return;
    connection.socket.once('close', (code: number) => {
      if (code !== ABNORMAL_CLOSURE) onReceived?.();
    });
    flushHeld(connection); // the revocation it was pushed comes before the close
    send(connection.socket, {
      type: 'error',
      code: 'CONSOLE_REVOKED',
      message: 'This console has been revoked',
      fatal: true,
    });
    closeSocket(connection.socket, CLOSE_CODES.CONSOLE_REVOKED, 'console revoked');
  }

  /**
   * A stored (committed) command, sent now if its console is connected here. Its unit of work
   * published the pointer with its commit (`SessionService.storeEndCommand`): the node holding the
   * console sends it from there (backend/cluster/pushes.ts), and it is re-sent on every hello until
   * acknowledged.
   */
  deliver(command: CommandRecord): void {
    this.sendCommand(command);
  }

  /** Sends a stored command to its console if it is connected here. */
  sendCommand(command: CommandRecord): boolean {
    return this.sendRaw(command.consoleId, commandMessage(command));
  }
}

/** Sends what waited while a hello was answered, in order; from now on pushes go out at once. */
/**
 * Starts the close handshake, and reads the socket again if it was paused (its own window of batches, or held back
 * at the node's bound: console-channel.ts): the console's answering close frame is behind whatever it sent meanwhile,
 * and only reading it ends the handshake (a revoked console's acknowledgement, `disconnect`), frees the socket and
 * its console's place (`isConnected`). Nothing read from a closing socket is acted on (ConsoleChannel.onMessage).
 */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  socket.close(code, reason);
  if (socket.isPaused) socket.resume();
}

export function flushHeld(connection: ConsoleSocket): void {
  const held = connection.held;
  connection.held = undefined;
  for (const data of held ?? []) sendData(connection.socket, data);
}

/** Sends a text frame; a Buffer (UTF-8 JSON, encoded once for many consoles) is sent as text too. */
export function sendData(socket: WebSocket, data: string | Buffer): boolean {
  if (socket.readyState !== WebSocket.OPEN) return false;
  if (typeof data !== 'string' && writeFramed(socket, data)) return true;
  socket.send(data, { binary: false });
  return true;
}

/**
 * A fan-out's message framed once (a WebSocket text frame: header + payload, unmasked as a server
 * sends it), by payload: 10,000 consoles get the same Buffer, written with one `write` each instead
 * of `ws` building a header and corking two writes per socket (about an eighth of the send loop's CPU).
 */
const frames = new WeakMap<Buffer, Buffer>();

function frameOf(payload: Buffer): Buffer {
  let frame = frames.get(payload);
  if (frame === undefined) {
    const length = payload.length;
    const header =
      length < 126
        ? Buffer.from([0x81, length])
        : length < 65536
          ? Buffer.from([0x81, 126, length >> 8, length & 0xff])
          : Buffer.concat([Buffer.from([0x81, 127]), bigEndian64(length)]);
    frame = Buffer.concat([header, payload]);
    frames.set(payload, frame);
  }
  return frame;
}

function bigEndian64(n: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(n));
  return out;
}

/** What `ws` keeps of a server socket (its internals: checked, and `send` used when they differ). */
interface WsInternals {
  _isServer?: unknown;
  _socket?: { write?: unknown; writable?: unknown };
  _sender?: { _state?: unknown; _queue?: unknown; _firstFragment?: unknown };
  _extensions?: Record<string, unknown>;
}

/**
 * Writes the pre-framed message straight to the socket when `ws` would write exactly those bytes:
 * a server socket (no mask), no compression extension, its sender idle with nothing queued and not
 * inside a fragmented message. Otherwise false, and the caller uses `send`.
 */
function writeFramed(socket: WebSocket, payload: Buffer): boolean {
  const ws = socket as unknown as WsInternals;
  const sender = ws._sender;
  const raw = ws._socket;
  if (
    ws._isServer !== true ||
    raw === undefined ||
    typeof raw.write !== 'function' ||
    raw.writable !== true ||
    sender === undefined ||
    sender._state !== 0 ||
    !Array.isArray(sender._queue) ||
    sender._queue.length !== 0 ||
    sender._firstFragment !== true ||
    ws._extensions === undefined ||
    Object.keys(ws._extensions).length !== 0
  ) {
    return false;
  }
  (raw.write as (chunk: Buffer) => boolean).call(raw, frameOf(payload));
  return true;
}

export function send(socket: WebSocket, message: BackendMessage): boolean {
  return sendData(socket, JSON.stringify(message));
}

/**
 * The `end-session` message for a stored command. Its reason is a code (END_SESSION_REASONS); a
 * command stored before the codes, still unacknowledged, holds an admin's own words (the only free
 * text ever stored there): it goes out as `ended-by-admin`, the text never reaches the console.
 */
export function commandMessage(command: CommandRecord): string {
  return JSON.stringify({
    type: 'command',
    commandId: command.id,
    command: 'end-session',
    sessionId: command.sessionId,
    reason: isEndSessionReason(command.reason) ? command.reason : 'ended-by-admin',
  } satisfies BackendMessage);
}
