/**
 * Time and timers for the agent core, injected so tests drive idle lock, continuity windows,
 * expiry and reconnect backoff with a fake clock in milliseconds.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms`; the returned handle cancels it. */
  setTimer(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A source of randomness in [0, 1) for jitter; injected so tests can pin it. */
export type Random = () => number;
