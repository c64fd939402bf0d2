import { serverNow } from './server-clock.js';
import { EVENT_OUTCOMES, EVENT_TYPES, type StoredEvent } from '../shared/events.js';
import { endpoint } from './api.js';
import { fmtTime, h, pill, replace, timeZone } from './dom.js';
import { pagedTable, type Names } from './paged-table.js';
import type { View } from './view.js';

function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** `detail.policyVersion` as `v3`; a console's event may carry any detail value, shown as it is. */
function policyVersion(value: string | number | boolean | null | undefined): string {
  if (value === undefined || value === null) return '—';
  return typeof value === 'number' ? `v${value}` : String(value);
}

/** A page of events also names the services it shows (`names.services`, id → name). */
function serviceName(names: Names, id: string): string | undefined {
  return (names as Names & { services?: Record<string, string> }).services?.[id];
}

/** Audit export: events for a time range, as JSON Lines or CSV, straight from the admin API. */
export const auditView: View = (main) => {
  const now = serverNow();
  const from = h('input', {
    id: 'ex-from',
    type: 'datetime-local',
    value: localInput(now - 24 * 3600_000),
    required: true,
  });
  const to = h('input', { id: 'ex-to', type: 'datetime-local', value: localInput(now + 60_000), required: true });
  const format = h(
    'select',
    { id: 'ex-format' },
    h('option', { value: 'csv' }, 'CSV (spreadsheets)'),
    h('option', { value: 'jsonl' }, 'JSON Lines (tools, SIEM)'),
  );
  const type = h(
    'select',
    { id: 'ex-type' },
    h('option', { value: '' }, 'every type'),
    EVENT_TYPES.map((t) => h('option', { value: t }, t)),
  );
  // A name or an id: the export resolves a name to the operator it names.
  const operator = h('input', { id: 'ex-operator', size: 14, placeholder: 'name or id' });
  const message = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Export events' },
    h('label', { for: 'ex-from' }, `From (${timeZone()})`, from),
    h('label', { for: 'ex-to' }, `To (${timeZone()})`, to),
    h('label', { for: 'ex-format' }, 'Format', format),
    h('label', { for: 'ex-type' }, 'Type', type),
    h('label', { for: 'ex-operator' }, 'Operator', operator),
    h('button', { type: 'submit', class: 'primary', id: 'export' }, 'Download export'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const start = new Date(from.value).getTime();
    const end = new Date(to.value).getTime();
    if (!(start < end)) {
      replace(message, h('div', { class: 'error', role: 'alert' }, '"From" must be before "To".'));
      return;
    }
    const q = new URLSearchParams({ format: format.value, from: String(start), to: String(end) });
    if (type.value !== '') q.set('type', type.value);
    if (operator.value.trim() !== '') q.set('operator', operator.value.trim());
    const link = h('a', { href: `${endpoint('adminEventsExport')[1]}?${q.toString()}`, download: '' }, 'download');
    document.body.append(link);
    link.click();
    link.remove();
    replace(
      message,
      h(
        'p',
        { class: 'ok', role: 'status' },
        `Export requested: ${format.value.toUpperCase()}, ${fmtTime(start)} to ${fmtTime(end)}. The export itself is recorded in the audit trail.`,
      ),
    );
  });
  // Every stored event, newest first, searched by the names people know (operator, console, site).
  const browse = pagedTable<StoredEvent>({
    id: 'events',
    route: 'adminEvents',
    listKey: 'events',
    caption: 'Events',
    searchLabel: 'Search events',
    searchPlaceholder: 'operator or console name',
    filters: [
      { key: 'type', label: 'Type', options: EVENT_TYPES.map((t) => [t, t] as const) },
      { key: 'outcome', label: 'Outcome', options: EVENT_OUTCOMES.map((o) => [o, o] as const) },
      { key: 'operator', label: 'Operator', placeholder: 'type a name…', picker: 'operator' },
      { key: 'console', label: 'Console', placeholder: 'type a name…', picker: 'console' },
      { key: 'site', label: 'Site', placeholder: 'exact site' },
      // A service account's name or id: the backend's events about it (there is no service picker).
      { key: 'service', label: 'Service', placeholder: 'name or id' },
    ],
    defaultSort: 'received',
    defaultOrder: 'desc',
    columns: [
      { label: `time (${timeZone()})`, sort: 'received', cell: (e) => fmtTime(e.time, { seconds: true, zone: false }) },
      { label: 'type', cell: (e) => e.type },
      {
        label: 'outcome',
        cell: (e) => pill(e.outcome, e.outcome === 'failure' ? 'bad' : e.outcome === 'success' ? 'good' : ''),
      },
      {
        label: 'operator',
        cell: (e, names) =>
          e.subject.operator === undefined ? '—' : (names.operators[e.subject.operator] ?? e.subject.operator),
      },
      {
        label: 'console',
        cell: (e, names) => {
          if (e.subject.console === undefined) return '—';
          const c = names.consoles[e.subject.console];
          return c === undefined
            ? e.subject.console
            : `${c.name ?? e.subject.console}${c.site === null ? '' : ` (${c.site})`}`;
        },
      },
      // A service account by name, its id as a tooltip (the id alone when the page has no name for it).
      {
        label: 'service',
        cell: (e, names) => {
          if (e.subject.service === undefined) return '—';
          const name = serviceName(names, e.subject.service);
          return name === undefined
            ? h('span', { class: 'mono' }, e.subject.service)
            : h('span', { title: e.subject.service }, name);
        },
      },
      // The policy version that decided it (sign-ins, tokens, policy decisions), written as on the Consoles page.
      { label: 'policy', cell: (e) => policyVersion(e.detail?.policyVersion) },
      { label: 'reasons', cell: (e) => e.reasons.join(', ') || '—' },
    ],
    empty: 'No event is stored yet.',
  });
  replace(
    main,
    h('h1', {}, 'Audit'),
    h('section', { class: 'card' }, h('h2', {}, 'Events'), browse),
    h('h2', {}, 'Audit export'),
    h(
      'section',
      { class: 'card' },
      h(
        'p',
        {},
        "Every event the backend stored in the range (from inclusive, to exclusive), oldest first, at most 100 000 per file; the last line says where to continue when there are more. Each event says who emitted it (origin: the backend or a console id) and carries the flags the backend set when it stored it: refused (a type only the backend records, or a time too far ahead), subject-not-witnessed, time-before-previous, session-change-refused. A console's refused or marked event is evidence, not a fact. CSV cells are quoted and text that a spreadsheet would run as a formula is prefixed with an apostrophe.",
      ),
      form,
      message,
    ),
  );
};
