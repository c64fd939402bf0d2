import type { Logger } from 'pino';
import { safeDetail } from './cluster/freshness.js';
import { DatabaseReadOnlyError, type DatabaseHealthView } from './store/database-health.js';

/**
 * What `GET /healthz` and `GET /readyz` answer for one node (one backend process).
 *
 * - `/healthz` is for monitoring: 200 `ok` or 503 `degraded`, with why, the node id, the engine, the
 *   database's state, whether the node's view of revocations is stale, and the usual counters.
 * - `/readyz` is for load balancers: 200 only when the node should get new connections: it is not
 *   stopping, the database answered a round trip just now (at most `probeTimeoutMs`), the embedded
 *   file is not damaged, and the node is not stale. A stale node leaves the rotation so its consoles
 *   move to nodes that see revocations; it comes back by itself once fresh.
 *
 * The database round trip is shared: calls within `probeCacheMs` reuse the last result, and at most
 * one probe runs at a time, so a load balancer checking every second costs one query a second.
 * Nothing here names the database URL or its password, nor repeats the database's or the driver's
 * own error text: a failed probe says `error: "DATABASE_UNREACHABLE"` and a plain `description`
 * (refused or dropped, or no answer in time), a database that answers but accepts no writes (a
 * PostgreSQL standby, or one set read-only) `database-read-only` with `error: "STORAGE_UNAVAILABLE"`;
 * the detail goes to the node's log, once per change.
 */

export type HealthProblem =
  | 'database-unreachable'
  | 'database-read-only'
  | 'database-damaged'
  | 'node-stale'
  | 'shutting-down';

export interface NodeHealthInputs {
  nodeId: string;
  engine: 'sqlite' | 'postgres';
  version: string;
  startedAt: number;
  clock?: () => number;
  consolesConnected: () => number;
  /**
   * A cheap round trip to the database (one statement); rejects or hangs when it is away, rejects with
   * DatabaseReadOnlyError when it answers but accepts no writes.
   */
  probeDatabase: () => Promise<unknown>;
  /** The embedded file's integrity (DatabaseHealth.view()); absent with PostgreSQL. */
  databaseFile?: () => DatabaseHealthView;
  /** The node's freshness (FreshnessMonitor.state()); absent in the embedded mode. */
  freshness?: () => { stale: boolean; reason?: string; since?: number; lastConfirmedAt?: number };
  /** True once the node is stopping. */
  stopping?: () => boolean;
  /** Where a failed probe's detail is logged (its first line, URLs replaced), when reachability changes. */
  logger: Logger;
  /** Default 1000 ms. */
  probeTimeoutMs?: number;
  /** Default 1000 ms. */
  probeCacheMs?: number;
}

export interface HealthAnswer {
  status: 200 | 503;
  body: Record<string, unknown>;
}

/** Why the database probe failed, in the body: a stable code and plain words, never the driver's text. */
export const PROBE_FAILURES = {
  refused: 'the database refused the connection, dropped it, or returned an error',
  timeout: 'the database did not answer in time',
  'read-only': 'the database answers but accepts no writes (a standby after a failover, or set read-only)',
} as const;

interface Probe {
  ok: boolean;
  at: number;
  ms: number;
  failure?: keyof typeof PROBE_FAILURES;
}

export class NodeHealth {
  private readonly clock: () => number;
  private last: Probe | undefined;
  private running: Promise<Probe> | undefined;

  constructor(private readonly inputs: NodeHealthInputs) {
    this.clock = inputs.clock ?? Date.now;
  }

  /** `GET /healthz`. */
  async healthz(): Promise<HealthAnswer> {
    const { problems, probe } = await this.assess();
    const stopping = problems.includes('shutting-down');
    // Stopping is not a fault: monitoring should not page for a rolling restart.
    const degraded = problems.some((p) => p !== 'shutting-down');
    const freshness = this.inputs.freshness?.();
    return {
      status: degraded ? 503 : 200,
      body: {
        status: degraded ? 'degraded' : 'ok',
        problems,
        nodeId: this.inputs.nodeId,
        engine: this.inputs.engine,
        version: this.inputs.version,
        uptimeSeconds: Math.round((this.clock() - this.inputs.startedAt) / 1000),
        consolesConnected: this.inputs.consolesConnected(),
        stopping,
        database: {
          reachable: probe.ok || probe.failure === 'read-only',
          roundTripMs: probe.ms,
          probedAt: probe.at,
          ...(probe.failure === undefined
            ? {}
            : { error: probeErrorCode(probe.failure), description: PROBE_FAILURES[probe.failure] }),
          ...(this.inputs.databaseFile === undefined ? {} : this.inputs.databaseFile()),
        },
        ...(freshness === undefined ? {} : { freshness }),
      },
    };
  }

  /** `GET /readyz`. */
  async readyz(): Promise<HealthAnswer> {
    const { problems } = await this.assess();
    const ready = problems.length === 0;
    return {
      status: ready ? 200 : 503,
      body: { ready, nodeId: this.inputs.nodeId, ...(ready ? {} : { problems }) },
    };
  }

  private async assess(): Promise<{ problems: HealthProblem[]; probe: Probe }> {
    const problems: HealthProblem[] = [];
    if (this.inputs.stopping?.() === true) problems.push('shutting-down');
    const probe = await this.probe();
    if (!probe.ok) problems.push(probe.failure === 'read-only' ? 'database-read-only' : 'database-unreachable');
    const file = this.inputs.databaseFile?.();
    if (file !== undefined && file.state === 'damaged') problems.push('database-damaged');
    if (this.inputs.freshness?.().stale === true) problems.push('node-stale');
    return { problems, probe };
  }

  private probe(): Promise<Probe> {
    const cacheMs = this.inputs.probeCacheMs ?? 1000;
    const now = this.clock();
    if (this.last !== undefined && now - this.last.at < cacheMs) return Promise.resolve(this.last);
    this.running ??= this.runProbe().then((probe) => {
      if (this.last !== undefined && !this.last.ok && probe.ok) {
        this.inputs.logger.info({ node: this.inputs.nodeId }, 'health: the database answers again');
      }
      this.last = probe;
      this.running = undefined;
      return probe;
    });
    return this.running;
  }

  private async runProbe(): Promise<Probe> {
    const timeoutMs = this.inputs.probeTimeoutMs ?? 1000;
    const started = this.clock();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Error(`no answer within ${timeoutMs} ms`);
    try {
      await Promise.race([
        this.inputs.probeDatabase(),
        new Promise((_, reject) => {
          // Judged after one more turn of the loop's I/O: an answer that came while this process was frozen is read first.
          timer = setTimeout(() => setImmediate(() => reject(timedOut)), timeoutMs);
        }),
      ]);
      return { ok: true, at: started, ms: this.clock() - started };
    } catch (error) {
      const failure = error === timedOut ? 'timeout' : error instanceof DatabaseReadOnlyError ? 'read-only' : 'refused';
      // Logged when the database stops answering (not on every probe while it stays away).
      if (this.last?.ok !== false) {
        const code = (error as { code?: unknown } | undefined)?.code;
        this.inputs.logger.warn(
          {
            node: this.inputs.nodeId,
            code: probeErrorCode(failure),
            failure,
            detail: safeDetail(error),
            ...(typeof code === 'string' ? { driverCode: code } : {}),
          },
          'health: the database probe failed',
        );
      }
      return { ok: false, at: started, ms: this.clock() - started, failure };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}

/** The code a failed probe is shown with: what a request would get meanwhile (http-kit.ts `storageFault`). */
function probeErrorCode(failure: keyof typeof PROBE_FAILURES): 'DATABASE_UNREACHABLE' | 'STORAGE_UNAVAILABLE' {
  return failure === 'read-only' ? 'STORAGE_UNAVAILABLE' : 'DATABASE_UNREACHABLE';
}
