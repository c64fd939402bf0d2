import type { Logger } from 'pino';
import { BatonError } from '../../shared/errors.js';
import type { ClusterBus } from './bus.js';
import type { NodeIdentity, NodeRegistry } from './nodes.js';

/**
 * A node's view of revocations may be stale: it lost the database, or its cluster notifications,
 * and a revocation issued on another node may not have reached it. The monitor confirms the view
 * periodically with a round trip through the bus (a ping sent and received on the dedicated
 * listening connection, so a store pool busy with requests does not delay it; after the resync that
 * follows every reconnect), and calls the view stale
 * once nothing was confirmed for longer than the bound. Sign-in, step-up, resume and the action-token exchange
 * consult `decide`.
 */

export type StaleCause = 'bus-disconnected' | 'heartbeat-failed' | 'not-confirmed' | 'clock-skew';

/**
 * A node whose clock is further than this from the database's is stale (cause `clock-skew`, logged
 * `CLOCK_SKEW`) until it comes back within it. Every single-use claim (sign-in challenges, request
 * nonces, Shared Signals jtis) is kept a margin past its expiry by the database's clock and checked by
 * the node's, the console arbiter orders hellos by the nodes' clocks, and app servers compare token
 * times with their own: a node far off widens replay windows no one would see. NTP keeps nodes within
 * milliseconds; 30 s is a node whose time service is broken.
 */
export const MAX_CLOCK_SKEW_MS = 30_000;

export interface FreshnessState {
  stale: boolean;
  /** When the view became stale (the last confirmation + the bound), while stale. */
  since?: number;
  /** Why, in words (for logs, the admin console and the console's message), while stale. */
  reason?: string;
  cause?: StaleCause;
  /** The last time the view was confirmed, if ever. */
  lastConfirmedAt?: number;
}

/** What a decision does on this node now. `reasons` are event reasons (`[a-z0-9._-]`, see shared/events.ts). */
export type StaleDecision = { refuse: BatonError } | { proceed: true; reasons: string[]; stale?: FreshnessState };

/** The event reason every decision taken on a stale node carries (best-effort channels). */
export const STALE_NODE_REASON = 'stale-node';

export interface FreshnessOptions {
  bus: ClusterBus;
  logger: Logger;
  /** Stale once nothing was confirmed for longer than this (ms). */
  boundMs: number;
  /** Heartbeat period (ms); default a third of the bound, so a live node never crosses it. */
  intervalMs?: number;
  /** How long a ping may take (ms); default the smaller of the interval and 2 s. */
  pingTimeoutMs?: number;
  clock?: () => number;
  /** When given, every heartbeat upserts this node's row (with its stale flag) there. */
  registry?: { nodes: NodeRegistry; node: NodeIdentity };
  /**
   * The node's own wall clock, compared with the database's at each beat (MAX_CLOCK_SKEW_MS); default
   * Date.now. Not `clock`, which tests move to make the view stale.
   */
  wallClock?: () => number;
}

/**
 * What a stale node says about why, in words of its own: stable per cause, never the database's or
 * the driver's text (which may name hosts, ports or users). Shown in /healthz, the NODE_STALE
 * message, the consoles' notice and the admin console's node list.
 */
export const STALE_CAUSE_TEXT: Record<StaleCause, string> = {
  'bus-disconnected': 'the cluster bus lost its connection to the database',
  'heartbeat-failed': 'the cluster bus heartbeat did not come back',
  'not-confirmed': 'the cluster view was never confirmed',
  'clock-skew': "this node's clock disagrees with the database's",
};

function failure(cause: StaleCause, detail: string): { cause: StaleCause; message: string; detail: string } {
  return { cause, message: STALE_CAUSE_TEXT[cause], detail: safeDetail(detail) };
}

/** An error's first line for a log, with any URL (and so any password in it) replaced. */
export function safeDetail(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return (text.split('\n')[0] ?? '').replace(/\w+:\/\/\S+/g, '[url]').slice(0, 300);
}

export class FreshnessMonitor {
  private readonly bus: ClusterBus;
  private readonly logger: Logger;
  private readonly clock: () => number;
  readonly boundMs: number;
  readonly intervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly createdAt: number;
  private lastConfirmedAt: number | undefined;
  private lastFailure: { cause: StaleCause; message: string; detail: string } | undefined;
  /** The database's clock minus this node's at the last beat, while further apart than MAX_CLOCK_SKEW_MS; and since when. */
  private clockSkew: { ms: number; since: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<FreshnessState> | undefined;
  private reported: boolean | undefined;
  private readonly listeners = new Set<(state: FreshnessState) => void>();
  private readonly unsubscribeBus: () => void;

  constructor(private readonly options: FreshnessOptions) {
    if (!(options.boundMs > 0)) throw new Error('The staleness bound must be positive');
    this.bus = options.bus;
    this.logger = options.logger;
    this.clock = options.clock ?? Date.now;
    this.boundMs = options.boundMs;
    this.intervalMs = options.intervalMs ?? Math.max(1, Math.floor(options.boundMs / 3));
    this.pingTimeoutMs = options.pingTimeoutMs ?? Math.min(this.intervalMs, 2_000);
    this.createdAt = this.clock();
    this.unsubscribeBus = this.bus.onStatus((status) => {
      if (!status.connected) {
        this.lastFailure = failure('bus-disconnected', status.lastError ?? 'unknown');
        this.report();
      } else {
        // Reconnected and resynced: confirm at once rather than at the next tick.
        void this.check();
      }
    });
  }

  /** Starts the periodic heartbeat (the first one at once). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
    void this.check();
  }

  /** Stops the heartbeat; with a registry, removes this node's row (a clean shutdown). */
  async stop(options: { removeRow?: boolean } = {}): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribeBus();
    await this.running;
    const registry = this.options.registry;
    if (registry !== undefined && options.removeRow !== false) {
      await registry.nodes.remove(registry.node.nodeId).catch((error: unknown) => {
        this.logger.warn({ err: error }, 'freshness: could not remove this node from the registry');
      });
    }
  }

  /** One heartbeat now (one at a time): ping through the bus, then beat in the registry. */
  check(): Promise<FreshnessState> {
    this.running ??= this.heartbeat().finally(() => (this.running = undefined));
    return this.running;
  }

  state(): FreshnessState {
    const now = this.clock();
    const base = this.lastConfirmedAt ?? this.createdAt;
    const lastConfirmed = this.lastConfirmedAt === undefined ? {} : { lastConfirmedAt: this.lastConfirmedAt };
    if (this.clockSkew !== undefined) {
      const { ms, since } = this.clockSkew;
      return {
        stale: true,
        since,
        cause: 'clock-skew',
        reason: `${STALE_CAUSE_TEXT['clock-skew']}: ${Math.round(Math.abs(ms) / 1000)} s ${ms > 0 ? 'behind' : 'ahead'} (bound ${MAX_CLOCK_SKEW_MS / 1000} s)`,
        ...lastConfirmed,
      };
    }
    if (now - base <= this.boundMs) return { stale: false, ...lastConfirmed };
    const why =
      this.lastFailure ??
      (this.lastConfirmedAt === undefined ? failure('not-confirmed', '') : failure('heartbeat-failed', 'no heartbeat'));
    const silentFor = Math.round((now - base) / 1000);
    return {
      stale: true,
      since: base + this.boundMs,
      cause: why.cause,
      reason: `no confirmation of the cluster view for ${silentFor} s (bound ${this.boundMs / 1000} s): ${why.message}`,
      ...lastConfirmed,
    };
  }

  /**
   * What a sign-in, step-up, resume or action-token exchange does on this node, given its channel's `staleNode`
   * policy:
   * fresh → proceed; stale and `strict` → refuse with NODE_STALE; stale and `best-effort` → proceed on
   * the last known state, with the `stale-node` reason in the decision and its events.
   */
  decide(channelMode: 'strict' | 'best-effort'): StaleDecision {
    const state = this.state();
    if (!state.stale) return { proceed: true, reasons: [] };
    if (channelMode === 'strict') {
      return {
        refuse: new BatonError(
          'NODE_STALE',
          `This backend node's view of revocations may be stale (${state.reason ?? 'unknown'}); try another node or retry later`,
          { extra: { staleSince: state.since, cause: state.cause } },
        ),
      };
    }
    return { proceed: true, reasons: [STALE_NODE_REASON], stale: state };
  }

  /** Called when `state().stale` flips (checked at each heartbeat and bus status change). */
  onChange(handler: (state: FreshnessState) => void): () => void {
    this.listeners.add(handler);
    return () => void this.listeners.delete(handler);
  }

  private async heartbeat(): Promise<FreshnessState> {
    const status = this.bus.status();
    if (!status.connected) {
      this.lastFailure = failure('bus-disconnected', status.lastError ?? 'unknown');
    } else {
      try {
        await this.bus.ping(this.pingTimeoutMs);
        this.lastConfirmedAt = this.clock();
        this.lastFailure = undefined;
      } catch (error) {
        const message = safeDetail(error);
        this.lastFailure = failure('heartbeat-failed', message);
        this.logger.warn({ err: message, node: this.bus.nodeId }, 'freshness: heartbeat failed');
        // The bus believes it listens but our own notification did not come back: a half-open
        // connection, or a lost LISTEN. Reconnecting (and resyncing) is the cure.
        if (this.bus.status().connected) this.bus.recycle(`heartbeat failed: ${message}`);
      }
    }
    await this.beat(this.state());
    // The beat may have found this node's clock off (or back within the bound): the row says so at the next beat.
    const state = this.state();
    this.report(state);
    return state;
  }

  private async beat(state: FreshnessState): Promise<void> {
    const registry = this.options.registry;
    if (registry === undefined) return;
    const wallClock = this.options.wallClock ?? Date.now;
    try {
      const sentAt = wallClock();
      const databaseNow = await registry.nodes.beat({
        ...registry.node,
        lastBeat: this.clock(),
        stale: state.stale,
        staleSince: state.since ?? null,
        staleReason: state.reason ?? null,
      });
      if (databaseNow !== undefined) this.compareClocks(databaseNow - (sentAt + wallClock()) / 2);
    } catch (error) {
      // Expected while the database is down: the row's age then tells the other nodes.
      this.logger.debug({ err: error }, 'freshness: registry beat failed');
    }
  }

  /** `skewMs`: the database's clock minus this node's (positive: this node is behind). */
  private compareClocks(skewMs: number): void {
    if (Math.abs(skewMs) <= MAX_CLOCK_SKEW_MS) {
      if (this.clockSkew !== undefined) {
        this.logger.info({ node: this.bus.nodeId, skewMs: Math.round(skewMs) }, 'freshness: clock within bound again');
      }
      this.clockSkew = undefined;
      return;
    }
    if (this.clockSkew === undefined) {
      this.logger.error(
        { node: this.bus.nodeId, skewMs: Math.round(skewMs), boundMs: MAX_CLOCK_SKEW_MS, code: 'CLOCK_SKEW' },
        "freshness: this node's clock is too far from the database's; stale until it is fixed (check its time service)",
      );
      this.clockSkew = { ms: skewMs, since: this.clock() };
    } else this.clockSkew.ms = skewMs;
  }

  private report(state = this.state()): void {
    if (this.reported === state.stale) return;
    const first = this.reported === undefined;
    this.reported = state.stale;
    if (state.stale) {
      // The words the node shows are plain; the database's own words stay in the log.
      this.logger.error(
        { node: this.bus.nodeId, ...state, detail: this.lastFailure?.detail },
        'freshness: this node is stale',
      );
    } else if (!first) this.logger.info({ node: this.bus.nodeId }, 'freshness: this node is fresh again');
    if (first && !state.stale) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(state);
      } catch (error) {
        this.logger.error({ err: error }, 'freshness: listener failed');
      }
    }
  }
}
