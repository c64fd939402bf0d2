/**
 * The backend's clock as the admin console sees it. Every answer carries the backend's time in its `Date` header
 * (whole seconds); the pages compute "the last 24 hours", "now" and "5 min ago" from it, so an admin's PC whose clock
 * is minutes off still sees the newest records in range. Within SKEW_IGNORED_MS the browser's own clock is used:
 * the header's one-second resolution alone would otherwise move it by up to a second.
 */
const SKEW_IGNORED_MS = 2_000;

let skewMs = 0;

/** Notes one answer's `Date` header, read when the answer arrived (`receivedAt`, the browser's clock). */
export function noteServerDate(header: string | null, receivedAt: number): void {
  if (header === null) return;
  const date = Date.parse(header);
  if (!Number.isFinite(date)) return;
  // The header is truncated to the second: its midpoint is the best estimate of the backend's time.
  const skew = date + 500 - receivedAt;
  skewMs = Math.abs(skew) < SKEW_IGNORED_MS ? 0 : skew;
}

/** Now, on the backend's clock as last seen (the browser's clock when they agree to within two seconds). */
export function serverNow(): number {
  return Date.now() + skewMs;
}
