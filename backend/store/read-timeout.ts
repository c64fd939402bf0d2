/**
 * A client-side read timeout for PostgreSQL queries that is not fooled by this process having been
 * frozen: used by the store's pool (postgres-store.ts) and by the cluster bus's connections (bus.ts)
 * instead of pg's own `query_timeout`.
 */

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
