/**
 * A deadline that counts only the time this process ran. When a process is stopped (SIGSTOP, a paused VM, a long
 * synchronous stall) and resumes, libuv runs its due timers before it reads its sockets: a timer that decides "the
 * peer said nothing in time" would judge before reading what the peer sent meanwhile. Where the answer is one read
 * away, one more turn of the loop (`setImmediate`) is enough (read-timeout.ts, the console heartbeat); where the
 * end of the wait takes further round trips (a pooled connection released after its holder's `COMMIT`, a TLS
 * handshake, a resync of several queries), the wait gets back the time the process did not run.
 */

/** How late a timer must fire to count as time this process did not run (a freeze, a long stall), not load. */
const NOT_RUN_MS = 200;
/**
 * At most this many extensions, and at most `ms` given back in all: a loop that is always that late is overloaded,
 * and its waits end, at most about twice their length (plus the lag) after they began.
 */
const MAX_EXTENSIONS = 3;

/**
 * Calls `expire` once `ms` have passed in which this process ran, then one more turn of the loop's I/O; `clear()`
 * cancels it. For a wait whose end needs more than the answer already in a socket (a connection from the pool is
 * released only after its holder's next round trips, a new connection needs several): when the timer fires
 * `NOT_RUN_MS` or more late, the process was stopped or stalled for that long, and the wait is given that time
 * again (at most `ms` in all, at most `MAX_EXTENSIONS` times) instead of being judged on the first tick after it. A freeze
 * that ends before the deadline is still counted: only a late timer shows one.
 */
export function lagAwareTimer(ms: number, expire: () => void): { clear(): void } {
  let cleared = false;
  let extensions = 0;
  let givenBack = 0;
  let handle: ReturnType<typeof setTimeout> | undefined;
  const arm = (wait: number) => {
    const due = performance.now() + wait;
    handle = setTimeout(() => {
      const late = performance.now() - due;
      const back = Math.min(late, ms - givenBack);
      if (late >= NOT_RUN_MS && extensions < MAX_EXTENSIONS && back > 0) {
        extensions++;
        givenBack += back;
        arm(back);
        return;
      }
      setImmediate(() => {
        if (!cleared) expire();
      });
    }, wait);
  };
  arm(ms);
  return {
    clear() {
      cleared = true;
      clearTimeout(handle);
    },
  };
}

/**
 * What `AbortSignal.timeout(ms)` gives (a signal aborted with a `TimeoutError` once `ms` have passed), counted only in
 * time this process ran: after a stop or a stall, an answer already waiting in the socket is read before a request is
 * judged too slow. For a request and the read of its answer; `clear()` once the answer is read.
 */
export function lagAwareTimeoutSignal(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = lagAwareTimer(ms, () =>
    controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
  );
  return { signal: controller.signal, clear: () => timer.clear() };
}
