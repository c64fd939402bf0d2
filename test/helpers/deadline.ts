/**
 * A bound on every wait of the test helpers on the network or a child process: a request that gets no
 * answer fails with an error naming what it waited for, well before the runner's per-file timeout
 * (300 s), which kills the file and reports nothing about where it hung. No imports beyond Node's:
 * Playwright loads helpers that use it (ssf-receiver.ts).
 */

/** The default bound: far above any answer a healthy test backend gives, far below the file timeout. */
export const NETWORK_WAIT_MS = 30_000;

/** Real timers, captured before any test fakes them: a deadline stays real time. */
const realTimers = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };

/** What a bounded wait rejects with when its time is up: `what` names the request or step, `detail` adds what is known. */
export class DeadlineError extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
    detail?: string,
  ) {
    super(`${what}: no answer within ${ms} ms${detail === undefined ? '' : `; ${detail}`}`);
    this.name = 'DeadlineError';
  }
}

/**
 * Runs `work`, or rejects with a DeadlineError naming `what` once `ms` have passed. `work` gets a
 * signal aborted at that moment (pass it to fetch so the socket is let go); the deadline holds even
 * when the work ignores it.
 */
export async function withDeadline<T>(
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
  ms = NETWORK_WAIT_MS,
): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = realTimers.setTimeout(() => {
      const error = new DeadlineError(what, ms);
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    realTimers.clearTimeout(timer);
  }
}

/** `GET /path?query (host:port)`: the request a bounded fetch names when it gets no answer. */
export function describeRequest(method: string, url: string): string {
  const parsed = new URL(url);
  return `${method} ${parsed.pathname}${parsed.search} (${parsed.host})`;
}
