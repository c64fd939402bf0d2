import type { AgentConnection } from './agent-types.js';
import type { Clock } from './clock.js';

/** How long a ceremony waits for the agent to catch up after reconnecting before it is refused. */
export const SYNC_WAIT_MS = 15_000;

/** What the backend's welcome says the console must reach before it counts as caught up. */
export interface SyncTarget {
  policyVersion: number;
  policyHash: string;
  revocationEpoch: number;
  /** The journal's last sequence number at the welcome: the backlog to flush. */
  flushTo: number;
}

/** Where the console stands against the target: what it holds and what the backend acknowledged. */
export interface SyncProgress {
  policyVersion: number;
  /** The hash of the policy held, or undefined before the first policy. */
  policyHash: string | undefined;
  revocationEpoch: number;
  ackedSeq: number;
}

/**
 * The connection to the backend and how far the console has caught up, as one state. `offlineSince`
 * (monotonic ms) is the start of the outage still unreported by an `agent-online` event; the welcome
 * closes it.
 */
export type LinkState =
  | { kind: 'stopped'; offlineSince: number | undefined }
  | { kind: 'connecting'; offlineSince: number | undefined }
  | { kind: 'syncing'; welcome: undefined; offlineSince: number | undefined }
  | { kind: 'syncing'; welcome: SyncTarget }
  | { kind: 'online' }
  | { kind: 'offline'; since: number };

/** The `agent-online` event a welcome calls for. */
export interface BackOnline {
  reason: 'started' | 'reconnected';
  offlineMs: number | undefined;
}

/** Whether the target is met: revocations and policy applied, backlog acknowledged. */
export function caughtUp(target: SyncTarget, progress: SyncProgress): boolean {
  if (progress.revocationEpoch < target.revocationEpoch) return false;
  if (progress.policyVersion !== target.policyVersion) return false;
  if (progress.policyHash !== undefined && progress.policyHash !== target.policyHash) return false;
  return progress.ackedSeq >= target.flushTo;
}

/**
 * The connection and sync state machine: connecting → syncing (socket open) → syncing with the
 * welcome's target → online once caught up; offline on any close; stopped on shutdown. Every
 * transition is a method here, and ceremonies wait here (bounded) for the console to settle.
 */
export class SyncMachine {
  private current: LinkState = { kind: 'stopped', offlineSince: undefined };
  /** Whether any connection was ever welcomed: the first welcome is `started`, later ones `reconnected`. */
  private everWelcomed = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly clock: Clock) {}

  get state(): LinkState {
    return this.current;
  }

  get connection(): AgentConnection {
    return this.current.kind;
  }

  /** The client starts dialling. */
  connect(): void {
    this.current = { kind: 'connecting', offlineSince: this.offlineSince() };
  }

  /** Shutdown (revoked, unknown, re-enrolling, stopping): waiters are told at once. */
  stop(): void {
    this.current = { kind: 'stopped', offlineSince: this.offlineSince() };
    this.release();
  }

  /** The socket opened: nothing counts until the welcome. */
  opened(): void {
    this.current = { kind: 'syncing', welcome: undefined, offlineSince: this.offlineSince() };
  }

  /** The backend welcomed this console; returns the `agent-online` event to journal, if one is due. */
  welcomed(target: SyncTarget): BackOnline | undefined {
    const since = this.offlineSince();
    const due = since !== undefined || !this.everWelcomed;
    const event: BackOnline = {
      reason: this.everWelcomed ? 'reconnected' : 'started',
      offlineMs: since === undefined ? undefined : Math.round(this.clock.monotonic() - since),
    };
    this.everWelcomed = true;
    if (this.current.kind !== 'online') this.current = { kind: 'syncing', welcome: target };
    return due ? event : undefined;
  }

  /**
   * Moves to online when the welcome's target is met; true on that transition. The offline cap
   * starts over only here, not at a bare welcome.
   */
  checkCaughtUp(progress: SyncProgress): boolean {
    const state = this.current;
    if (state.kind !== 'syncing' || state.welcome === undefined) return false;
    if (!caughtUp(state.welcome, progress)) return false;
    this.current = { kind: 'online' };
    this.release();
    return true;
  }

  /**
   * The connection closed. Returns undefined when already offline (a failed redial), else whether the
   * outage goes on the record as `agent-offline` (after a live connection, or before the first welcome).
   */
  closed(): { journal: boolean } | undefined {
    const state = this.current;
    this.release();
    if (state.kind === 'offline') return undefined;
    const wasConnected = state.kind === 'online' || state.kind === 'syncing';
    this.current = { kind: 'offline', since: this.offlineSince() ?? this.clock.monotonic() };
    return { journal: wasConnected || !this.everWelcomed };
  }

  /** Online → 'online'; offline or stopped → that; connecting or syncing → waits up to SYNC_WAIT_MS first. */
  async settled(): Promise<AgentConnection> {
    if (this.unsettled()) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimer(SYNC_WAIT_MS, done);
        const waiters = this.waiters;
        function done() {
          timer.cancel();
          waiters.delete(done);
          resolve();
        }
        this.waiters.add(done);
      });
    }
    return this.connection;
  }

  private unsettled(): boolean {
    return this.current.kind === 'syncing' || this.current.kind === 'connecting';
  }

  private offlineSince(): number | undefined {
    const state = this.current;
    switch (state.kind) {
      case 'offline':
        return state.since;
      case 'online':
        return undefined;
      case 'syncing':
        return state.welcome === undefined ? state.offlineSince : undefined;
      case 'stopped':
      case 'connecting':
        return state.offlineSince;
    }
  }

  private release(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }
}
