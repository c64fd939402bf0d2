import { serverNow } from './server-clock.js';
import type { ConsoleView } from '../shared/admin-views.js';
import { EVENT_OUTCOMES, EVENT_TYPES, isTakenAsFact, type StoredEvent } from '../shared/events.js';
import { api, endpoint } from './api.js';
import { errorBox, fmtAgo, fmtTime, h, pill, replace, table, timeZone } from './dom.js';
import { entityPicker } from './picker.js';
import type { View } from './view.js';

type ConsoleRow = ConsoleView;
interface SessionRow {
  id: string;
  operatorId: string;
  consoleId: string;
  channel: string;
  level: string;
  state: string;
  startedAt: number;
  authTime: number;
  operatorName?: string | null;
  consoleName?: string | null;
}

const MAX_ROWS = 500;
/** The live view shows the consoles heard from last and the people signed in now, never the whole estate. */
const RECENT_CONSOLES = 25;
const LIVE_SESSIONS = 200;

export function consoleState(c: { online: boolean; revokedAt: number | null }): HTMLElement {
  if (c.revokedAt !== null) return pill('revoked', 'bad');
  return c.online ? pill('online', 'good') : pill('offline', 'warn');
}

/** Consoles, who is signed in where, and the event stream as it arrives, with a drill-down. */
export const liveView: View = (main) => {
  const consolesBox = h('div', {}, h('p', { class: 'muted' }, 'Loading consoles…'));
  const sessionsBox = h('div', {}, h('p', { class: 'muted' }, 'Loading sessions…'));
  const streamState = h('span', { id: 'stream-state', 'aria-live': 'polite' }, 'connecting…');
  const tbody = h('tbody', { id: 'event-rows' });
  const emptyEvents = h(
    'p',
    { class: 'empty', id: 'events-empty' },
    'No events match yet. New ones appear here as they arrive.',
  );
  const drill = h(
    'section',
    { class: 'card', id: 'drill-down', 'aria-label': 'Event detail' },
    h('p', { class: 'muted' }, 'Choose an event to see its session and decision path.'),
  );

  const field = (id: string, label: string, input: HTMLInputElement | HTMLSelectElement) => {
    input.id = id;
    input.name = id;
    return h('label', { for: id }, label, input);
  };
  // Search-as-you-type: the first matches by name from the API, the chosen one's id sent to the stream.
  const fOperator = entityPicker({ id: 'f-operator', kind: 'operator', size: 14 });
  const fConsole = entityPicker({ id: 'f-console', kind: 'console', size: 14 });
  const fSession = h('input', { size: 14 });
  const fType = h(
    'select',
    {},
    h('option', { value: '' }, 'any type'),
    EVENT_TYPES.map((t) => h('option', { value: t }, t)),
  );
  const fOutcome = h(
    'select',
    {},
    h('option', { value: '' }, 'any outcome'),
    EVENT_OUTCOMES.map((o) => h('option', { value: o }, o)),
  );
  const fFrom = h('input', { type: 'datetime-local' });
  const fTo = h('input', { type: 'datetime-local' });
  const filters = h(
    'form',
    { class: 'row', 'aria-label': 'Filter events' },
    h('label', { for: 'f-operator' }, 'Operator', fOperator.element),
    h('label', { for: 'f-console' }, 'Console', fConsole.element),
    field('f-session', 'Session', fSession),
    field('f-type', 'Type', fType),
    field('f-outcome', 'Outcome', fOutcome),
    field('f-from', `From (${timeZone()})`, fFrom),
    field('f-to', `To (${timeZone()})`, fTo),
    h('button', { type: 'submit' }, 'Apply filters'),
  );

  // Names learnt from the pages this view reads (never the whole estate's lists: 10,000 consoles and 50,000
  // operators on every refresh); an id the stream names that is not known yet is looked up once.
  const names = new Map<string, string>();
  const consoleNames = new Map<string, string | null>();
  const asked = new Set<string>();
  const lookUp = (kind: 'operator' | 'console', id: string) => {
    const key = `${kind}:${id}`;
    if (asked.has(key)) return;
    asked.add(key);
    const found =
      kind === 'operator'
        ? api<{ operators: { id: string; displayName: string }[] }>(
            ...endpoint('adminOperators', {}, { q: id, limit: 5 }),
          ).then(({ operators }) => operators.find((o) => o.id === id)?.displayName)
        : api<{ consoles: ConsoleRow[] }>(...endpoint('adminConsoles', {}, { q: id, limit: 5 })).then(
            ({ consoles }) => consoles.find((c) => c.id === id)?.name ?? undefined,
          );
    void found.then(
      (name) => {
        if (name === undefined || name === '') return;
        (kind === 'operator' ? names : consoleNames).set(id, name);
        for (const cell of main.querySelectorAll<HTMLElement>(`[data-${kind}-id="${CSS.escape(id)}"]`)) {
          cell.textContent = kind === 'operator' ? `${name} ${id}` : name;
          cell.title = id;
          cell.classList.remove('mono');
        }
      },
      () => undefined,
    );
  };
  /** A console by its name; one with no name shows its id, which may break anywhere. */
  const consoleCell = (id: string | undefined): HTMLElement | string => {
    if (id === undefined) return '—';
    const name = consoleNames.get(id);
    if (name === undefined) lookUp('console', id);
    return typeof name === 'string' && name !== ''
      ? h('span', { title: id, 'data-console-id': id }, name)
      : h('span', { class: 'mono', 'data-console-id': id }, id);
  };
  const operatorCell = (id: string | undefined): HTMLElement | string => {
    if (id === undefined) return '—';
    const name = names.get(id);
    if (name === undefined) lookUp('operator', id);
    return h('span', { 'data-operator-id': id }, `${name ?? ''} ${id}`.trim());
  };
  let source: EventSource | undefined;
  let count = 0;

  const showEvent = (event: StoredEvent) => {
    count++;
    emptyEvents.hidden = true;
    const open = h('button', { type: 'button', 'aria-label': `Open event ${event.type} #${event.cursor}` }, 'Open');
    open.addEventListener('click', () => void drillDown(event));
    const row = h(
      'tr',
      { class: 'new-event', 'data-type': event.type },
      h('td', {}, fmtTime(event.time, { seconds: true, zone: false })),
      h('td', {}, event.type),
      h(
        'td',
        {},
        pill(
          event.outcome,
          event.outcome === 'failure' || event.outcome === 'deny'
            ? 'bad'
            : event.outcome === 'success' || event.outcome === 'allow'
              ? 'good'
              : '',
        ),
      ),
      h('td', {}, operatorCell(event.subject.operator)),
      // Who emitted it: the backend, or the console that sent it (its word, not the backend's).
      h('td', {}, event.origin === 'backend' ? pill('backend') : pill(`console ${event.origin}`, 'warn')),
      h('td', {}, consoleCell(event.subject.console ?? (event.origin === 'backend' ? undefined : event.origin))),
      h('td', { class: 'mono' }, event.subject.session ?? '—'),
      h('td', {}, event.assurance?.level ?? '—'),
      h('td', {}, event.reasons.join(', ')),
      h(
        'td',
        {},
        event.integrity.length === 0
          ? '—'
          : event.integrity.map((flag) => pill(flag, isTakenAsFact({ integrity: [flag] }) ? 'warn' : 'bad')),
      ),
      h('td', {}, open),
    );
    tbody.prepend(row);
    window.setTimeout(() => row.classList.remove('new-event'), 4000);
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild?.remove();
    if (/^session-|sign-in|operator-revoked|credential-change/.test(event.type)) scheduleRefresh();
  };

  const drillDown = async (event: StoredEvent) => {
    replace(
      drill,
      h('h2', {}, `Event #${event.cursor}: ${event.type}`),
      h('pre', { class: 'mono scroll' }, JSON.stringify(event, null, 2)),
    );
    const session = event.subject.session;
    if (session === undefined) {
      drill.append(
        h('p', { class: 'empty' }, 'This event belongs to no operator session, so it has no decision path.'),
      );
      return;
    }
    try {
      const { events } = await api<{ events: StoredEvent[] }>(...endpoint('adminEvents', {}, { session, limit: 1000 }));
      drill.append(
        h('h3', {}, `Session ${session}: every event, in order`),
        table(
          'Session path',
          ['#', `time (${timeZone()})`, 'type', 'outcome', 'level', 'reasons', 'action'],
          events.map((e) => [
            e.cursor === event.cursor ? h('strong', {}, `▶ ${e.cursor}`) : String(e.cursor),
            fmtTime(e.time, { seconds: true, zone: false }),
            e.type,
            e.outcome,
            e.assurance?.level ?? '—',
            e.reasons.join(', '),
            typeof e.detail?.action === 'string' ? e.detail.action : '',
          ]),
          'No stored events for this session.',
        ),
      );
    } catch (error) {
      drill.append(errorBox(error));
    }
    drill.focus();
  };

  const connect = () => {
    source?.close();
    tbody.replaceChildren();
    count = 0;
    emptyEvents.hidden = false;
    const q = new URLSearchParams();
    const add = (key: string, value: string) => value !== '' && q.set(key, value);
    add('operator', fOperator.value());
    add('console', fConsole.value());
    add('session', fSession.value.trim());
    add('type', fType.value);
    add('outcome', fOutcome.value);
    const from = fFrom.value === '' ? serverNow() - 3600_000 : new Date(fFrom.value).getTime();
    q.set('from', String(from));
    if (fTo.value !== '') q.set('to', String(new Date(fTo.value).getTime()));
    q.set('after', '0');
    source = new EventSource(`${endpoint('adminEventStream')[1]}?${q.toString()}`);
    source.addEventListener('assurance-event', (message) =>
      showEvent(JSON.parse((message as MessageEvent<string>).data) as StoredEvent),
    );
    source.addEventListener('open', () => (streamState.textContent = 'live: connected'));
    source.addEventListener('error', () => {
      streamState.textContent =
        source?.readyState === EventSource.CLOSED ? 'live: disconnected (sign in again?)' : 'live: reconnecting…';
    });
  };
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    connect();
  });

  let refreshTimer: number | undefined;
  const scheduleRefresh = () => {
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(() => void refresh(), 300);
  };
  const refresh = async () => {
    try {
      const [{ consoles, total, totalAtLeast }, active, suspended] = await Promise.all([
        api<{ consoles: ConsoleRow[]; total: number; totalAtLeast?: boolean }>(
          ...endpoint('adminConsoles', {}, { sort: 'lastSeen', order: 'desc', limit: RECENT_CONSOLES }),
        ),
        api<{ sessions: SessionRow[]; total: number }>(
          ...endpoint('adminSessions', {}, { state: 'active', limit: LIVE_SESSIONS }),
        ),
        api<{ sessions: SessionRow[]; total: number }>(
          ...endpoint('adminSessions', {}, { state: 'suspended', limit: LIVE_SESSIONS }),
        ),
      ]);
      for (const c of consoles) consoleNames.set(c.id, c.name);
      for (const s of [...active.sessions, ...suspended.sessions]) {
        if (typeof s.operatorName === 'string') names.set(s.operatorId, s.operatorName);
        if (s.consoleName !== undefined) consoleNames.set(s.consoleId, s.consoleName);
      }
      const consoleLabel = (id: string) => consoleCell(id);
      const all = `${totalAtLeast === true ? 'more than ' : ''}${total.toLocaleString('en-GB')}`;
      const signedIn = active.total + suspended.total;
      replace(
        consolesBox,
        total > consoles.length
          ? h(
              'p',
              { class: 'muted', id: 'live-consoles-shown' },
              `The ${consoles.length} heard from most recently, of ${all}. `,
              h('a', { href: '#/consoles' }, 'All consoles'),
            )
          : null,
        table(
          'Consoles',
          ['console', 'channel', 'site', 'state', 'last contact', 'policy'],
          consoles.map((c) => [
            h('a', { href: `#/consoles/${encodeURIComponent(c.id)}` }, consoleLabel(c.id)),
            c.channel,
            c.site ?? '—',
            consoleState(c),
            h('span', { title: fmtTime(c.lastSeenAt) }, fmtAgo(c.lastSeenAt)),
            `v${c.policyVersion}`,
          ]),
          'No console is enrolled yet. Issue an enrolment token on the Consoles page.',
        ),
      );
      const sessions = [...active.sessions, ...suspended.sessions];
      replace(
        sessionsBox,
        signedIn > sessions.length
          ? h(
              'p',
              { class: 'muted', id: 'live-sessions-shown' },
              `${sessions.length} of ${signedIn.toLocaleString('en-GB')} shown. `,
              h('a', { href: '#/sessions?state=active' }, 'All sessions'),
            )
          : null,
        table(
          'Signed in now',
          ['operator', 'console', 'level', 'state', `since (${timeZone()})`, 'last authenticated'],
          sessions.map((s) => [
            h(
              'a',
              { href: `#/operators/${encodeURIComponent(s.operatorId)}` },
              names.get(s.operatorId) ?? s.operatorId,
            ),
            consoleLabel(s.consoleId),
            s.level,
            pill(s.state, s.state === 'active' ? 'good' : 'warn'),
            fmtTime(s.startedAt, { zone: false }),
            fmtAgo(s.authTime),
          ]),
          'Nobody is signed in on any console right now.',
        ),
      );
    } catch (error) {
      replace(consolesBox, errorBox(error));
    }
  };

  replace(
    main,
    h('h1', {}, 'Live view'),
    h(
      'div',
      { class: 'grid' },
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'h-consoles' },
        h('h2', { id: 'h-consoles' }, 'Consoles'),
        consolesBox,
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'h-sessions' },
        h('h2', { id: 'h-sessions' }, 'Signed in now'),
        sessionsBox,
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'h-events' },
      h('h2', { id: 'h-events' }, 'Assurance events ', streamState),
      filters,
      h('p', { class: 'muted' }, 'Newest first; the last hour unless you choose a range.'),
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          { id: 'events' },
          h('caption', { class: 'sr-only' }, 'Assurance events'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              [
                `time (${timeZone()})`,
                'type',
                'outcome',
                'operator',
                'origin',
                'console',
                'session',
                'level',
                'reasons',
                'flags',
                '',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          tbody,
        ),
        emptyEvents,
      ),
    ),
    drill,
  );
  drill.tabIndex = -1;
  void refresh();
  connect();
  const poll = window.setInterval(() => void refresh(), 10_000);
  return () => {
    source?.close();
    window.clearInterval(poll);
    window.clearTimeout(refreshTimer);
    void count;
  };
};
