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
