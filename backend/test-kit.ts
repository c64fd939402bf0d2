/**
 * Helpers for the backend's tests (not imported by the backend).
 */

/**
 * The event loop does not run for `ms`: what a process stopped with SIGSTOP, or stalled (a long synchronous task, a
 * stop-the-world pause), sees when it resumes. Its due timers then run before it reads what its sockets received
 * meanwhile: the tests of the timeouts that must not judge before reading use this.
 */
export function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Whether `promise` has settled after the event loop has turned a few times (it cannot while it waits on something held,
 * such as a WAL flush). */
export async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}
