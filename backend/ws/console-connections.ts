import { WebSocket } from 'ws';
import { CLOSE_CODES, type BackendMessage } from '../../shared/protocol.js';
import type { ConsolePort } from '../services/console-port.js';
import type { CommandRecord } from '../store/repositories.js';

/** What the table needs of a console's connection (the console channel's connections carry more). */
export interface ConsoleSocket {
  /** This connection's id, cluster-wide. */
  readonly id: string;
  readonly socket: WebSocket;
  /** Set once the console has said hello: only then is anything pushed to it. */
  readonly hello: unknown;
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
    send(connection.socket, {
      type: 'error',
      code: 'CONSOLE_REVOKED',
      message: 'This console has been revoked',
      fatal: true,
    });
    connection.socket.close(CLOSE_CODES.CONSOLE_REVOKED, 'console revoked');
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

/** Sends a text frame; a Buffer (UTF-8 JSON, encoded once for many consoles) is sent as text too. */
export function sendData(socket: WebSocket, data: string | Buffer): boolean {
  if (socket.readyState !== WebSocket.OPEN) return false;
  socket.send(data, { binary: false });
  return true;
}

export function send(socket: WebSocket, message: BackendMessage): boolean {
  return sendData(socket, JSON.stringify(message));
}

export function commandMessage(command: CommandRecord): string {
  return JSON.stringify({
    type: 'command',
    commandId: command.id,
    command: 'end-session',
    sessionId: command.sessionId,
    reason: command.reason,
  } satisfies BackendMessage);
}
