import type { Logger } from 'pino';
import type { StoredEvent } from '../../shared/events.js';
import type { EventLog } from '../services/event-log.js';
import type { Store } from '../store/repositories.js';
import { SinkCursors, type SinkCursor } from './cursors.js';
import { HttpCollectorTransport } from './http-collector.js';
import { toOcsf } from './ocsf.js';
import { SyslogTransport } from './syslog.js';
import { SinkRefusal, type SiemTransport } from './transport.js';
import type { SiemSinkConfig } from './config.js';

/**
 * The continuous export to the SIEM: every stored event, in cursor order, as an OCSF record, to each
 * configured sink (syslog over TLS, an HTTP collector). The event log itself is the durable queue:
 * each sink has a cursor in the store, moved only after the sink acknowledged a batch, so a node
 * killed mid-batch, a restart or a sink that is down loses nothing (the batch is sent again: at
 * least once; `metadata.uid` is the event id, for a SIEM that removes duplicates).
 *
 * In a cluster one node at a time holds a sink's lease (renewed with every batch and while idle);
 * another takes over once it lapses. On PostgreSQL, cursors come from a sequence and are not in
 * commit order: a hole is passed only once no transaction that could still fill it is running.
 */

export interface SinkStatus {
  name: string;
  kind: 'syslog' | 'http';
  /** The target without secrets. */
  target: string;
  /** Whether this build's configuration still names the sink (a removed sink keeps its row). */
  configured: boolean;
  cursor: number;
  /** The newest stored event's cursor; `lag = head - cursor`. */
  head: number;
  lag: number;
  delivered: number;
  lastDeliveredAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Failed attempts since the last delivered batch. */
  failures: number;
  /** The node delivering it, while its lease runs. */
  deliveringNode: string | null;
}

export interface SiemExporterDeps {
  store: Store;
  events: EventLog;
  sinks: readonly SiemSinkConfig[];
  nodeId: string;
  logger: Logger;
  productVersion: string;
  clock?: () => number;
  /** How long a lease runs without renewal (default 15 s). */
  leaseMs?: number;
  /** How often an idle sink looks for new events without being woken (default 1 s). */
  pollMs?: number;
  /** Longest wait between two attempts of a failing sink (default 60 s). */
  maxBackoffMs?: number;
}

const FIRST_BACKOFF_MS = 250;
/** How long a hole at the cursor is looked at again before the snapshot is read again. */
const GAP_RECHECK_MS = 50;

function transportFor(sink: SiemSinkConfig): SiemTransport {
  return sink.kind === 'syslog'
    ? new SyslogTransport({
        host: sink.host,
        port: sink.port,
        tls: sink.tls,
        facility: sink.facility,
        appName: sink.appName,
        settleMs: sink.settleMs,
        connectTimeoutMs: sink.timeoutSeconds * 1000,
      })
    : new HttpCollectorTransport({
        url: sink.url,
        tokenFile: sink.tokenFile,
        caFile: sink.caFile,
        timeoutMs: sink.timeoutSeconds * 1000,
      });
}

class SinkLoop {
  readonly transport: SiemTransport;
  private stopped = false;
  private wake: (() => void) | undefined;
  private poked = false;
  private gap: { cursor: number; xmax: bigint } | undefined;
  running: Promise<void> | undefined;

  constructor(
    readonly sink: SiemSinkConfig,
    private readonly exporter: SiemExporter,
  ) {
    this.transport = transportFor(sink);
  }

  start(): void {
    this.running = this.run();
  }

  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.running;
    await this.transport.close().catch(() => undefined);
  }

  /**
   * Waits `ms`; a stop always cuts it short, a committed event (`poke`) only when `wakeable` (an idle
   * sink, not one backing off). A poke that came while the loop was busy makes the next idle wait return at once.
   */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.stopped || (wakeable && this.poked)) {
      this.poked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        if (wakeable) this.poked = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = () => {
        if (wakeable || this.stopped) done();
      };
    });
  }

  private async run(): Promise<void> {
    const { cursors, nodeId, clock, leaseMs, pollMs, logger } = this.exporter.context;
    const name = this.sink.name;
    let failures = 0;
    let leased = false;
    while (!this.stopped) {
      try {
        if (!(await cursors.lease(name, nodeId, clock(), leaseMs))) {
          if (leased) logger.info({ sink: name }, 'another node now delivers this SIEM sink');
          leased = false;
          await this.sleep(leaseMs / 3, false);
          continue;
        }
        leased = true;
        const row = await cursors.get(name);
        if (row === undefined) throw new Error(`SIEM sink ${name} has no cursor row`);
        const batch = await this.deliverable(row.cursor);
        if (batch.length === 0) {
          await this.sleep(this.gap === undefined ? pollMs : GAP_RECHECK_MS, true);
          continue;
        }
        try {
          await this.transport.send(batch.map((event) => toOcsf(event, this.exporter.ocsf)));
        } catch (error) {
          failures++;
          const message = error instanceof Error ? error.message : String(error);
          await cursors.failed(name, nodeId, message, clock()).catch(() => undefined);
          const backoff = Math.min(this.exporter.context.maxBackoffMs, FIRST_BACKOFF_MS * 2 ** (failures - 1));
          const wait = Math.max(
            backoff * (0.5 + Math.random() / 2),
            error instanceof SinkRefusal ? (error.retryAfterMs ?? 0) : 0,
          );
          logger.warn({ sink: name, failures, retryInMs: Math.round(wait), err: message }, 'SIEM delivery failed');
          await this.sleep(wait, false);
          continue;
        }
        failures = 0;
        const last = batch.at(-1) as StoredEvent;
        if (!(await cursors.advance(name, nodeId, row.cursor, last.cursor, batch.length, clock()))) {
          // The lease lapsed while the batch was out (a long stall): the new holder sends it again.
          logger.warn(
            { sink: name, cursor: row.cursor },
            'SIEM sink cursor moved by another node; batch will be re-sent',
          );
        }
      } catch (error) {
        // The store is unreachable or the row is missing: keep trying, slowly.
        logger.warn({ sink: name, err: error }, 'SIEM export step failed');
        await this.sleep(pollMs, false);
      }
    }
    if (leased) await cursors.release(name, nodeId).catch(() => undefined);
  }

  /** The events after `cursor` that can be sent now: in order, without a hole that could still fill. */
  private async deliverable(cursor: number): Promise<StoredEvent[]> {
    const { store, cursors } = this.exporter.context;
    const page = await store.events.query({ afterCursor: cursor, limit: this.sink.batchSize });
    const first = page[0];
    if (first === undefined) return [];
    // SQLite has one writer: cursors commit in order, a hole is never filled later.
    const holesMayFill = store.engine === 'postgres';
    if (holesMayFill && first.cursor !== cursor + 1) {
      const snapshot = await cursors.snapshot();
      if (this.gap === undefined || this.gap.cursor !== cursor) {
        this.gap = { cursor, xmax: snapshot.xmax };
        return [];
      }
      if (snapshot.xmin < this.gap.xmax) return [];
      // Every transaction that could have held a cursor in the hole has ended: pass it.
      this.gap = undefined;
      const again = await store.events.query({ afterCursor: cursor, limit: this.sink.batchSize });
      return contiguous(again, again[0]?.cursor ?? cursor + 1);
    }
    this.gap = undefined;
    return holesMayFill ? contiguous(page, first.cursor) : page;
  }
}

/** The leading run of `events` with consecutive cursors from `start`. */
function contiguous(events: StoredEvent[], start: number): StoredEvent[] {
  let expected = start;
  let end = 0;
  for (const event of events) {
    if (event.cursor !== expected) break;
    expected++;
    end++;
  }
  return events.slice(0, end);
}

export class SiemExporter {
  readonly context: {
    store: Store;
    cursors: SinkCursors;
    nodeId: string;
    clock: () => number;
    leaseMs: number;
    pollMs: number;
    maxBackoffMs: number;
    logger: Logger;
  };
  readonly ocsf: { productVersion: string };
  private readonly loops: SinkLoop[];
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: SiemExporterDeps) {
    this.context = {
      store: deps.store,
      cursors: new SinkCursors(deps.store),
      nodeId: deps.nodeId,
      clock: deps.clock ?? Date.now,
      leaseMs: deps.leaseMs ?? 15_000,
      pollMs: deps.pollMs ?? 1000,
      maxBackoffMs: deps.maxBackoffMs ?? 60_000,
      logger: deps.logger,
    };
    this.ocsf = { productVersion: deps.productVersion };
    this.loops = deps.sinks.map((sink) => new SinkLoop(sink, this));
  }

  /** Creates each sink's cursor row (at the start of the log, or at its end for `startAt: now`) and starts delivering. */
  async start(): Promise<void> {
    if (this.loops.length === 0) return;
    const { cursors, clock } = this.context;
    const head = await cursors.head();
    for (const loop of this.loops)
      await cursors.ensure(loop.sink.name, loop.sink.startAt === 'now' ? head : 0, clock());
    // A committed event wakes every idle sink at once (the poll is the safety net).
    this.unsubscribe = this.deps.events.subscribe({}, () => {
      for (const loop of this.loops) loop.poke();
    });
    for (const loop of this.loops) loop.start();
  }

  /** Stops delivering: the batch in flight finishes or fails, leases are given up, connections closed. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all(this.loops.map((loop) => loop.stop()));
  }

  /** Every sink the store knows, configured or not, with its lag (the admin console's export panel). */
  async status(): Promise<SinkStatus[]> {
    const { cursors, clock } = this.context;
    const [rows, head] = await Promise.all([cursors.list(), cursors.head()]);
    const now = clock();
    const byName = new Map<string, SinkCursor>(rows.map((row) => [row.sink, row]));
    const configured = new Map(this.loops.map((loop) => [loop.sink.name, loop]));
    const names = [...new Set([...configured.keys(), ...byName.keys()])].sort();
    return names.map((name) => {
      const row = byName.get(name);
      const loop = configured.get(name);
      const cursor = row?.cursor ?? 0;
      return {
        name,
        kind: loop?.sink.kind ?? 'http',
        target: loop?.transport.describe() ?? '(no longer configured)',
        configured: loop !== undefined,
        cursor,
        head,
        lag: Math.max(0, head - cursor),
        delivered: row?.delivered ?? 0,
        lastDeliveredAt: row?.lastDeliveredAt ?? null,
        lastError: row?.lastError ?? null,
        lastErrorAt: row?.lastErrorAt ?? null,
        failures: row?.failures ?? 0,
        deliveringNode: row !== undefined && row.leaseOwner !== null && row.leaseUntil >= now ? row.leaseOwner : null,
      };
    });
  }
}
