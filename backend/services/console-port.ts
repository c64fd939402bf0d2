import type { CommandRecord } from '../store/repositories.js';

/**
 * How the backend's services reach connected consoles: revocation pushes, end-session commands,
 * and who is connected. The console channel implements it; it is built after the services that
 * use it (it needs them), so the services get a `ConsolePort` at construction and the channel is
 * bound to it once. There is no silent fallback: a service used before the channel is bound
 * throws, and a composition that forgets the port does not type-check.
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

/** The port handed to the services first and bound to the console channel when it exists. */
export class LateConsolePort implements ConsolePort {
  private target: ConsolePort | undefined;

  /** Binds the channel; once only (a second channel would split the consoles between two objects). */
  bind(target: ConsolePort): void {
    if (this.target !== undefined) throw new Error('The console port is already bound to a console channel');
    this.target = target;
  }

  get bound(): boolean {
    return this.target !== undefined;
  }

  connectedConsoleIds(): Iterable<string> {
    return this.channel().connectedConsoleIds();
  }

  isConnected(consoleId: string): boolean {
    return this.channel().isConnected(consoleId);
  }

  sendRaw(consoleId: string, data: string | Buffer): boolean {
    return this.channel().sendRaw(consoleId, data);
  }

  disconnect(consoleId: string, reason: 'revoked', onReceived?: () => void): void {
    this.channel().disconnect(consoleId, reason, onReceived);
  }

  deliver(command: CommandRecord): void {
    this.channel().deliver(command);
  }

  private channel(): ConsolePort {
    if (this.target === undefined) {
      throw new Error('The console port was used before a console channel was bound to it (a wiring mistake)');
    }
    return this.target;
  }
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
