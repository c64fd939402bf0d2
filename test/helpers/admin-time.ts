/**
 * A time as the admin console writes it, worked out here independently of `admin/dom.ts`: the ISO date and the
 * minute in `zone` (24-hour clock), then the zone in brackets, e.g. `2026-12-07 04:21 (Europe/Paris)`.
 */
export function adminTime(ms: number, zone: string): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const p = (type: string) => parts.find((x) => x.type === type)?.value;
  return `${p('year')}-${p('month')}-${p('day')} ${p('hour')}:${p('minute')} (${zone})`;
}
