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
 * An announcement whose echo never came back (the bus was not listening, or its publish failed) is
 * sent again at the next resync, late: it then comes after announcements of newer connections made
 * meanwhile, so it carries the time of its hello (`helloAt`), and a late announcement closes only a
 * connection whose hello was earlier (node clocks must agree to well under a console's reconnect
 * time: NTP). Without it, a half-open socket announced again after a reconnect would close the
 * console's live socket on the node it moved to.
 *
 * Announcements are grouped like the store's reads (GroupedReads): one made while none is being
 * published goes at once, alone (`console-connected`); those made meanwhile go together after it, in
 * the order they were made, in as few `consoles-connected` notifications as fit (a burst of reconnects
 * after a failover costs a few NOTIFYs, each parsed once by every node, instead of one per console).
 * One notification is one position in the cluster's order, and its entries are taken in order.
 *
 * Wiring (console-channel.ts): `connected()` when a console's hello is accepted, `disconnected()` when
 * its socket closes, and `close` closes the socket with CLOSE_CODES.SUPERSEDED.
 */
export class ConsoleConnectionArbiter {
  /**
   * This node's current connection of each console: when its hello was accepted (this node's clock)
   * and whether its announcement came back yet.
   */
  private readonly local = new Map<string, { connectionId: string; helloAt: number; announced: boolean }>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeGrouped: () => void;
  private readonly unsubscribeResync: () => void;
  /** Announcements waiting for the one being published, in the order made (`helloAt` on one sent again). */
  private waiting: { consoleId: string; connectionId: string; helloAt?: number; done: () => void }[] = [];
  /** Connection ids waiting or being published. */
  private readonly queued = new Set<string>();
  private publishing = false;

  constructor(
    private readonly bus: ClusterBus,
    private readonly logger: Logger,
    /** Closes this node's connection `connectionId` of `consoleId`: a newer one exists on another node. */
    private readonly close: (consoleId: string, connectionId: string) => void,
    private readonly clock: () => number = Date.now,
  ) {
    this.unsubscribe = bus.subscribe('console-connected', (pointer, delivery) =>
      this.onAnnouncement(pointer, delivery),
    );
    this.unsubscribeGrouped = bus.subscribe('consoles-connected', ({ nodeId, connections }, delivery) => {
      for (const [consoleId, connectionId, helloAt] of connections)
        this.onAnnouncement(
          { consoleId, nodeId, connectionId, ...(helloAt === undefined ? {} : { helloAt }) },
          delivery,
        );
    });
    // Announcements lost while the bus was down: announce again, late, what never came back.
    this.unsubscribeResync = bus.onResync(async () => {
      // Not those still waiting or being published: a second copy could close the newer socket elsewhere too.
      const pending = [...this.local].filter(([, c]) => !c.announced && !this.queued.has(c.connectionId));
      await Promise.all(pending.map(([consoleId, c]) => this.announce(consoleId, c.connectionId, c.helloAt)));
    });
  }

  /** A console connected here (its hello was accepted). Resolves once announced (or the announcement failed, logged). */
  async connected(consoleId: string, connectionId: string): Promise<void> {
    this.local.set(consoleId, { connectionId, helloAt: this.clock(), announced: false });
    await this.announce(consoleId, connectionId);
  }

  /** A console's socket here closed. */
  disconnected(consoleId: string, connectionId: string): void {
    if (this.local.get(consoleId)?.connectionId === connectionId) this.local.delete(consoleId);
  }

  stop(): void {
    this.unsubscribe();
    this.unsubscribeGrouped();
    this.unsubscribeResync();
  }

  /** Resolves once this announcement was published (or its publish failed, logged). Never rejects. */
  private announce(consoleId: string, connectionId: string, helloAt?: number): Promise<void> {
    return new Promise((done) => {
      this.waiting.push({ consoleId, connectionId, ...(helloAt === undefined ? {} : { helloAt }), done });
      this.queued.add(connectionId);
      if (!this.publishing) void this.publishWaiting();
    });
  }

  /** Publishes what waits, a group at a time, until nothing does. */
  private async publishWaiting(): Promise<void> {
    this.publishing = true;
    try {
      while (this.waiting.length > 0) {
        // A connection that closed (or was replaced) while it waited is not announced: announcing a dead
        // socket late would close the console's live socket on another node.
        this.waiting = this.waiting.filter((a) => {
          const current = this.local.get(a.consoleId);
          const keep = current?.connectionId === a.connectionId && !current.announced;
          if (!keep) {
            this.queued.delete(a.connectionId);
            a.done();
          }
          return keep;
        });
        if (this.waiting.length === 0) break;
        const group = takeGroup(this.waiting, this.bus.nodeId);
        this.waiting = this.waiting.slice(group.length);
        try {
          if (group.length === 1) {
            const [{ consoleId, connectionId, helloAt }] = group as [(typeof group)[0]];
            const late = helloAt === undefined ? {} : { helloAt };
            await this.bus.publish('console-connected', { consoleId, nodeId: this.bus.nodeId, connectionId, ...late });
          } else {
            const connections = group.map((a): [string, string] | [string, string, number] =>
              a.helloAt === undefined ? [a.consoleId, a.connectionId] : [a.consoleId, a.connectionId, a.helloAt],
            );
            await this.bus.publish('consoles-connected', { nodeId: this.bus.nodeId, connections });
          }
        } catch (error) {
          // Until they are announced (at the next resync), no other node's announcement closes these.
          this.logger.warn(
            { err: error, consoles: group.length, console: group[0]?.consoleId },
            'cluster bus: could not announce a console connection',
          );
        }
        for (const a of group) {
          this.queued.delete(a.connectionId);
          a.done();
        }
      }
    } finally {
      this.publishing = false;
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
    if (pointer.helloAt !== undefined && pointer.helloAt < mine.helloAt) {
      // Sent again after a reconnect: it arrives after ours, but its hello came first.
      this.logger.info(
        { console: pointer.consoleId, connection: mine.connectionId, olderOn: pointer.nodeId },
        'console: a late announcement of an older connection on another node, ignored',
      );
      return;
    }
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

/** Bytes of entries one `consoles-connected` notification carries: well below the bus's MAX_PAYLOAD_BYTES with its envelope. */
const GROUP_BYTES = 6_000;
const GROUP_ENTRIES = 1_000;

/**
 * The longest prefix of `waiting` that fits one notification (at least one entry). Announcements sent
 * again (with `helloAt`) are not grouped with first ones, which nodes of the previous release can still read.
 */
export function takeGroup<T extends { consoleId: string; connectionId: string; helloAt?: number }>(
  waiting: readonly T[],
  nodeId: string,
): T[] {
  let bytes = Buffer.byteLength(nodeId);
  let n = 0;
  const late = waiting[0]?.helloAt !== undefined;
  while (n < waiting.length && n < GROUP_ENTRIES) {
    const entry = waiting[n]!;
    if ((entry.helloAt !== undefined) !== late) break;
    bytes += Buffer.byteLength(entry.consoleId) + Buffer.byteLength(entry.connectionId) + (late ? 24 : 8);
    if (n > 0 && bytes > GROUP_BYTES) break;
    n++;
  }
  return waiting.slice(0, Math.max(n, 1));
}
