/**
 * Time and timers for the agent core, injected so tests drive idle lock, continuity windows,
 * expiry and reconnect backoff with a fake clock in milliseconds.
 *
 * Two readings, never mixed:
 * - `now()` is the wall clock (epoch ms): for display, event times and what the backend is told.
 *   Anyone at the console's keyboard can set it back.
 * - `monotonic()` measures elapsed time for every window the console enforces (idle lock,
 *   continuity, offline grace, the offline cap, lifetime, token refresh). Setting the wall clock
 *   back does not move it.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall time, epoch milliseconds. Display and timestamps only. */
  now(): number;
  /** Elapsed milliseconds from an arbitrary origin; never goes back. Every window is measured on it. */
  monotonic(): number;
  /** Runs `fn` once after `ms`; the returned handle cancels it. */
  setTimer(ms: number, fn: () => void): Timer;
}

/**
 * An elapsed-time reading that never goes back and never under-counts: each read advances by the
 * larger of what the process's monotonic clock and the wall clock moved since the last read.
 * Setting the wall clock back therefore changes nothing (the monotonic step is used), and a machine
 * that slept (when the monotonic clock stops on Linux and macOS) still counts the time asleep from
 * the wall clock, so windows close rather than stretch. Setting the wall clock forward closes
 * windows early: the safe direction, since the operator only taps again.
 */
export function elapsedClock(wall: () => number, mono: () => number): () => number {
  let lastWall = wall();
  let lastMono = mono();
  let elapsed = 0;
  return () => {
    const w = wall();
    const m = mono();
    elapsed += Math.max(0, m - lastMono, w - lastWall);
    lastWall = w;
    lastMono = m;
    return elapsed;
  };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: elapsedClock(
    () => Date.now(),
    () => performance.now(),
  ),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A source of randomness in [0, 1) for jitter; injected so tests can pin it. */
export type Random = () => number;
