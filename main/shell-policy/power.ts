import type { BatonAgent } from '../core/agent.js';
import type { Clock } from '../core/clock.js';

/** How often the system idle time is read. The idle lock is seconds to minutes, so a few seconds is enough. */
export const IDLE_POLL_MS = 5_000;
/** Input events arrive per keystroke and mouse move; the agent hears about them at most this often. */
export const ACTIVITY_THROTTLE_MS = 1_000;

type PowerSignals = Pick<BatonAgent, 'reportSystemIdle' | 'osLocked'>;

/** The part of Electron's `powerMonitor` watched (the shell passes the real one). */
export interface PowerSource {
  getSystemIdleTime(): number;
  on(event: 'lock-screen', listener: () => void): unknown;
  on(event: 'suspend', listener: () => void): unknown;
  removeListener(event: 'lock-screen', listener: () => void): unknown;
  removeListener(event: 'suspend', listener: () => void): unknown;
}

/**
 * Feeds the OS's idle and lock signals to the agent: the system idle time every few seconds, and an
 * immediate lock when the OS locks the screen or the machine goes to sleep (a suspended console
 * must not wake up with someone's workspace open). Returns the function that stops watching.
 */
export function watchPower(
  powerMonitor: PowerSource,
  agent: PowerSignals,
  timers: { every(ms: number, fn: () => void): () => void } = realIntervals,
  pollMs = IDLE_POLL_MS,
): () => void {
  const lock = () => agent.osLocked();
  powerMonitor.on('lock-screen', lock);
  powerMonitor.on('suspend', lock);
  const stopPolling = timers.every(pollMs, () => agent.reportSystemIdle(powerMonitor.getSystemIdleTime()));
  return () => {
    stopPolling();
    powerMonitor.removeListener('lock-screen', lock);
    powerMonitor.removeListener('suspend', lock);
  };
}

const realIntervals = {
  every(ms: number, fn: () => void): () => void {
    const handle = setInterval(fn, ms);
    return () => clearInterval(handle);
  },
};

/** `noteActivity` at most once per `gapMs`, however fast input arrives. */
export function throttleActivity(
  note: () => void,
  clock: Pick<Clock, 'monotonic'>,
  gapMs = ACTIVITY_THROTTLE_MS,
): () => void {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    // Elapsed time: a wall clock set back must not swallow the operator's input (and lock them out).
    const now = clock.monotonic();
    if (now - last < gapMs) return;
    last = now;
    note();
  };
}
