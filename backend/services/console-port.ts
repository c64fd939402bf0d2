import type { CommandRecord } from '../store/repositories.js';

/**
 * How the backend's services reach connected consoles: revocation pushes, end-session commands,
 * and who is connected. The node's connection table implements it (`backend/ws/console-connections.ts`):
 * built first and given to the services and to the console channel at construction, so nothing is
 * bound after the fact. A composition without a console channel passes `NO_CONSOLE_CHANNEL`
 * explicitly; one that forgets the port does not type-check.
 */
export interface ConsolePort {
  connectedConsoleIds(): Iterable<string>;
  isConnected(consoleId: string): boolean;
  /** Sends an already-serialised message; returns false if the console is not connected. */
  sendRaw(consoleId: string, data: string | Buffer): boolean;
  /**
   * Tells the console it is revoked and closes its socket. `onReceived` runs once the console has
   * answered the close handshake: it has then read everything sent before it, the revocation included.
   */
  disconnect(consoleId: string, reason: 'revoked', onReceived?: () => void): void;
  /** Delivers a stored command now, if its console is connected (it is re-sent on reconnect). */
  deliver(command: CommandRecord): void;
}

/**
 * For compositions with no console channel at all (benchmarks of the services alone): nobody is
 * connected, so pushes report "not sent" and commands wait in the store for a reconnect. Chosen
 * explicitly, never a default.
 */
export const NO_CONSOLE_CHANNEL: ConsolePort = {
  connectedConsoleIds: () => [],
  isConnected: () => false,
  sendRaw: () => false,
  disconnect: () => undefined,
  deliver: () => undefined,
};
