/**
 * Timeouts for PostgreSQL that are not fooled by this process having been frozen: a read timeout for queries
 * (instead of pg's own `query_timeout`), and bounds on opening a connection and on waiting for a pooled one
 * (instead of `connectionTimeoutMillis`). Used by the store's pool (postgres-store.ts) and by the cluster bus's
 * connections (bus.ts).
 */
import pg from 'pg';
import { lagAwareTimer } from '../lag-aware-timer.js';

/** Matches the message of the error `withReadTimeout` rejects with. */
export const QUERY_TIMED_OUT = /^Query read timeout/;

/**
 * `pending`, or a `Query read timeout` error if it has not settled `ms` after the call. The verdict waits for
 * one more turn of the event loop's I/O (`setImmediate`): when this process itself did not run for a while (a
 * SIGSTOP, a long synchronous stall), its timers run first when it resumes, before it reads the sockets, and the
 * answer the server sent meanwhile is there unread. pg's own `query_timeout` judges at once: after a 8 s freeze a
 * statement the server had answered in 0.3 s failed with it (the unit of work rolled back, a console's batch
 * refused), and every other statement then in flight with it. (A paused VM: covered where the answer is in the
 * guest's socket buffer when the process runs again, not where the host delivers it later.)
 */
export function withReadTimeout<T>(pending: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (!settled) reject(new Error(`Query read timeout: no answer from the database within ${ms} ms`));
        }),
      ms,
    );
    pending.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        settled = true;
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}

/** What `connect` rejects with when no connection came in time (http-kit answers it DATABASE_UNREACHABLE). */
const CONNECT_TIMED_OUT = 'timeout exceeded when trying to connect';

/**
 * A pg client whose connection attempt is bounded by `lagAwareTimer` instead of pg's own
 * `connectionTimeoutMillis`, which judges on the first tick after this process was stopped: a connection the
 * server had accepted and authenticated meanwhile was destroyed unread. On expiry it does what pg's own timer
 * does (ends the socket), with a message http-kit answers DATABASE_UNREACHABLE.
 */
export function lagAwareClient(connectTimeoutMs: number): new (config?: pg.ClientConfig) => pg.Client {
  return class LagAwareClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(
      callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void),
    ): Promise<pg.Client> | void {
      const timer = lagAwareTimer(connectTimeoutMs, () => {
        const connection = this.connection as unknown as { _ending?: boolean; stream: { destroy(e: Error): void } };
        connection._ending = true;
        connection.stream.destroy(
          new Error(`Connection terminated due to connection timeout (${connectTimeoutMs} ms)`),
        );
      });
      if (callback === undefined) return super.connect().finally(() => timer.clear());
      const answer = callback as (err: Error | null, c?: pg.Client) => void;
      super.connect((error: Error | null, client?: pg.Client) => {
        timer.clear();
        answer(error, client);
      });
    }
  };
}

/**
 * A connection from the pool within `ms` of this process's running time (`lagAwareTimer`), or CONNECT_TIMED_OUT.
 * pg-pool's own wait judged on the first tick after a freeze: a unit waiting for a connection was refused
 * although the units holding the connections had their answers in their sockets and released them a few round
 * trips later. A wait given up is taken out of pg-pool's queue (as pg-pool's own timeout does; `waitingCount`
 * shows it); a connection handed to it late anyway (it was being opened for it) goes back to the pool.
 */
export function waitForClient(pool: pg.Pool, ms: number): Promise<pg.PoolClient> {
  return new Promise((resolve, reject) => {
    let abandoned = false;
    const callback = (
      error: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => {
      timer.clear();
      if (abandoned) {
        if (client !== undefined) done();
      } else if (error !== undefined || client === undefined) reject(error ?? new Error(CONNECT_TIMED_OUT));
      else resolve(client);
    };
    const timer = lagAwareTimer(ms, () => {
      abandoned = true;
      const queue = (pool as unknown as { _pendingQueue?: { callback: unknown }[] })._pendingQueue;
      const at = Array.isArray(queue) ? queue.findIndex((item) => item.callback === callback) : -1;
      if (at >= 0) queue!.splice(at, 1);
      reject(new Error(CONNECT_TIMED_OUT));
    });
    pool.connect(callback);
  });
}
