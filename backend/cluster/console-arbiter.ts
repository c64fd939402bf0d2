import type { Logger } from 'pino';
import type { ClusterBus, Delivery, Pointer } from './bus.js';

/**
 * Newest socket wins, cluster-wide. A console connected to two nodes (a reconnect that landed on
 * another node before the old socket died) keeps only the connection announced last.
 *
 * Every node announces each new console connection on the bus (`console-connected`). PostgreSQL
 * delivers notifications of different transactions in commit order, to every node in the same
 * order, so "last announced" is one order the whole cluster agrees on. A node closes its own
 * connection of a console when an announcement of another connection of that console arrives
 * *after* its own announcement came back; an announcement that arrives before its own is older, and
 * is ignored (the other node closes that one when ours arrives). Replacement on one node is the
 * console channel's business (it closes the previous socket itself); the arbiter never acts on its
 * own node's announcements except to note that they came back.
 *
 * Wiring (console-channel.ts): `connected()` when a console's hello is accepted, `disconnected()` when
 * its socket closes, and `close` closes the socket with CLOSE_CODES.SUPERSEDED.
 */
export class ConsoleConnectionArbiter {
  /** This node's current connection of each console, and whether its announcement came back yet. */
  private readonly local = new Map<string, { connectionId: string; announced: boolean }>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeResync: () => void;

  constructor(
    private readonly bus: ClusterBus,
    private readonly logger: Logger,
    /** Closes this node's connection `connectionId` of `consoleId`: a newer one exists on another node. */
    private readonly close: (consoleId: string, connectionId: string) => void,
  ) {
    this.unsubscribe = bus.subscribe('console-connected', (pointer, delivery) =>
      this.onAnnouncement(pointer, delivery),
    );
    // Announcements lost while the bus was down: announce again what never came back.
    this.unsubscribeResync = bus.onResync(async () => {
      const pending = [...this.local].filter(([, c]) => !c.announced);
      await Promise.all(pending.map(([consoleId, c]) => this.announce(consoleId, c.connectionId)));
    });
  }

  /** A console connected here (its hello was accepted). Resolves once announced (or the announcement failed, logged). */
  async connected(consoleId: string, connectionId: string): Promise<void> {
    this.local.set(consoleId, { connectionId, announced: false });
    await this.announce(consoleId, connectionId);
  }

  /** A console's socket here closed. */
  disconnected(consoleId: string, connectionId: string): void {
    if (this.local.get(consoleId)?.connectionId === connectionId) this.local.delete(consoleId);
  }

  stop(): void {
    this.unsubscribe();
    this.unsubscribeResync();
  }

  private async announce(consoleId: string, connectionId: string): Promise<void> {
    try {
      await this.bus.publish('console-connected', { consoleId, nodeId: this.bus.nodeId, connectionId });
    } catch (error) {
      // Until it is announced (at the next resync), no other node's announcement closes this one.
      this.logger.warn({ err: error, console: consoleId }, 'cluster bus: could not announce a console connection');
    }
  }

  private onAnnouncement(pointer: Pointer<'console-connected'>, delivery: Delivery): void {
    const mine = this.local.get(pointer.consoleId);
    if (mine === undefined) return;
    if (pointer.nodeId === this.bus.nodeId && delivery.local) {
      if (pointer.connectionId === mine.connectionId) mine.announced = true;
      return;
    }
    if (!mine.announced) return; // older than ours: its own node closes it when ours arrives
    this.local.delete(pointer.consoleId);
    this.logger.info(
      { console: pointer.consoleId, connection: mine.connectionId, newerOn: pointer.nodeId },
      'console connected again on another node: closing the older connection here',
    );
    try {
      this.close(pointer.consoleId, mine.connectionId);
    } catch (error) {
      this.logger.error({ err: error, console: pointer.consoleId }, 'closing a superseded console connection failed');
    }
  }
}
