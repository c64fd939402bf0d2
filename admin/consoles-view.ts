import type { ConsoleView } from '../shared/admin-views.js';
import { ApiError, api, endpoint } from './api.js';
import { confirmAction, count } from './confirm.js';
import { errorBox, fmtAgo, fmtTime, h, pill, replace, table } from './dom.js';
import { pagedTable } from './paged-table.js';
import { oneTimeSecret } from './one-time-secret.js';
import { consoleState } from './live-view.js';
import { showPropagation } from './propagation.js';
import type { View } from './view.js';

type ConsoleRow = ConsoleView;
interface Finding {
  type: string;
  time: number;
  reasons: string[];
  detail?: Record<string, unknown>;
}

export function outboxCell(outbox: ConsoleRow['outbox']): HTMLElement | string {
  if (outbox === null) return h('span', { class: 'muted' }, 'not reported');
  const share = outbox.pending / outbox.max;
  return h(
    'span',
    {},
    pill(`${outbox.pending} / ${outbox.max}`, share >= 0.9 ? 'bad' : share >= 0.5 ? 'warn' : 'good'),
    ` ${fmtAgo(outbox.reportedAt)}`,
  );
}

/** Consoles: enrolment tokens, state, sequence health, outbox backlog. */
export const consolesView: View = (main, id) => {
  if (id !== undefined) return consoleDetail(main, id);
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading consoles…'));
  const message = h('div');
  const channel = h('select', { id: 'token-channel' });
  const site = h('input', { id: 'token-site', maxlength: 100 });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Issue a console enrolment token' },
    h('label', { for: 'token-channel' }, 'Channel', channel),
    h('label', { for: 'token-site' }, 'Site', site),
    h('button', { type: 'submit', class: 'primary' }, 'Issue enrolment token'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const { token, expiresAt } = await api<{ token: string; expiresAt: number }>(
          ...endpoint('adminConsoleTokens'),
          {
            channel: channel.value,
            ...(site.value.trim() === '' ? {} : { site: site.value.trim() }),
          },
        );
        const where = site.value.trim() === '' ? channel.value : `${channel.value} at ${site.value.trim()}`;
        replace(
          message,
          oneTimeSecret({
            title: `Console enrolment token for ${where}`,
            value: token,
            expiresAt,
            id: 'new-console-token',
            instructions:
              'Give it to whoever installs the console: the agent asks for it on its first start (or scan it from this page), and it enrols one console only.',
          }),
        );
      } catch (error) {
        replace(message, errorBox(error));
      }
    })();
  });
  const load = async () => {
    try {
      const policy = await api<{ policy: { channels: Record<string, unknown> } }>(...endpoint('adminPolicy'));
      const channels = Object.keys(policy.policy.channels);
      replace(
        channel,
        channels.map((c) => h('option', { value: c }, c)),
      );
      // Search, filters, sort and pages are the admin API's (cursor paging): thousands of consoles.
      replace(
        list,
        pagedTable<ConsoleRow>({
          id: 'consoles',
          route: 'adminConsoles',
          listKey: 'consoles',
          caption: 'Consoles',
          searchLabel: 'Search consoles',
          searchPlaceholder: 'name, site or id',
          filters: [
            { key: 'site', label: 'Site', placeholder: 'exact site' },
            { key: 'channel', label: 'Channel', options: channels.map((c) => [c, c] as const) },
            {
              key: 'state',
              label: 'State',
              options: [
                ['active', 'not revoked'],
                ['revoked', 'revoked'],
              ],
            },
          ],
          defaultSort: 'name',
          defaultOrder: 'asc',
          columns: [
            {
              label: 'console',
              sort: 'name',
              cell: (c) => h('a', { href: `#/consoles/${encodeURIComponent(c.id)}` }, c.name ?? c.id),
            },
            { label: 'channel', sort: 'channel', cell: (c) => c.channel },
            { label: 'site', sort: 'site', cell: (c) => c.site ?? '—' },
            { label: 'state', cell: (c) => consoleState(c) },
            { label: 'last contact', sort: 'lastSeen', cell: (c) => fmtAgo(c.lastSeenAt) },
            { label: 'policy', cell: (c) => `v${c.policyVersion}` },
            { label: 'outbox backlog', cell: (c) => outboxCell(c.outbox) },
            { label: 'enrolled', sort: 'enrolled', cell: (c) => fmtTime(c.enrolledAt) },
          ],
          empty: 'No console is enrolled yet. Issue a token above and give it to whoever installs the console.',
        }),
      );
    } catch (error) {
      replace(list, errorBox(error));
    }
  };
  replace(
    main,
    h('h1', {}, 'Consoles'),
    h('section', { class: 'card' }, h('h2', {}, 'Enrol a console'), form, message),
    h('section', { class: 'card' }, h('h2', {}, 'All consoles'), list),
  );
  void load();
};

function consoleDetail(main: HTMLElement, id: string): void {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const result = h('div');
  const verifyBox = h('div');
  const reason = h('input', { id: 'console-revoke-reason', size: 40, maxlength: 500 });
  const load = async () => {
    try {
      // The names of the people signed in here come with the console (looked up by their ids), never
      // from the whole operators list.
      const detail = await api<{
        console: ConsoleRow;
        events: { lastSeq: number; integrityFindings: Finding[] };
        sessions: { id: string; operatorId: string; level: string; state: string; startedAt: number }[];
        names?: { operators: Record<string, string> };
      }>(...endpoint('adminConsole', { id }));
      const people = new Map(Object.entries(detail.names?.operators ?? {}));
      const c = detail.console;
      const label = `${c.name ?? c.id}${c.site === null ? '' : ` (${c.site})`}`;
      const revoke = h('button', { type: 'button', class: 'danger', disabled: c.revokedAt !== null }, 'Revoke console');
      revoke.addEventListener('click', () => {
        if (reason.value.trim() === '') {
          replace(
            result,
            h('div', { class: 'error', role: 'alert' }, 'Type a reason first: it is recorded in the audit trail.'),
          );
          reason.focus();
          return;
        }
        const who = [...new Set(detail.sessions.map((s) => people.get(s.operatorId) ?? s.operatorId))];
        void confirmAction({
          title: `Revoke console ${label}`,
          consequences: [
            who.length === 0
              ? 'Nobody is signed in on it: no session ends.'
              : `${count(detail.sessions.length, 'live session')} on it ${detail.sessions.length === 1 ? 'ends' : 'end'} now (${who.join(', ')}).`,
            'The console locks and can never sign anyone in again; it must be enrolled anew with a new token.',
          ],
          confirm: 'Revoke console',
        })
          .then((ok) =>
            ok
              ? api<{ epoch: number; sessionsRevoked: string[]; pushedTo: number }>(
                  ...endpoint('adminConsoleRevoke', { id }),
                  { reason: reason.value.trim() },
                )
              : undefined,
          )
          .then(
            (outcome) => {
              if (outcome === undefined) return;
              showPropagation(result, `Console ${c.name ?? c.id}`, outcome);
              return load();
            },
            (e: unknown) => replace(result, errorBox(e)),
          );
      });
      const verify = h('button', { type: 'button' }, 'Re-verify event chain now');
      verify.addEventListener('click', () => {
        void api<{
          checked: number;
          intact: boolean;
          problemCount: number;
          problems: { seq: number; problem: string }[];
        }>(...endpoint('adminEventsVerify', {}, { origin: id })).then(
          (r) =>
            replace(
              verifyBox,
              h(
                'div',
                { class: r.intact ? 'ok' : 'error', role: 'status' },
                `${r.checked} events checked: ${r.intact ? 'chain intact' : `${r.problemCount} problem(s): ${r.problems.map((p) => `seq ${p.seq} ${p.problem}`).join('; ')}`}`,
              ),
            ),
          (e: unknown) =>
            replace(
              verifyBox,
              e instanceof ApiError && e.code === 'NOT_FOUND'
                ? h(
                    'p',
                    { class: 'empty', role: 'status' },
                    'This console has not sent any event yet: there is no chain to verify.',
                  )
                : errorBox(e),
            ),
        );
      });
      const findings = detail.events.integrityFindings;
      replace(
        body,
        h('h1', {}, c.name ?? c.id, ' ', consoleState(c)),
        h(
          'p',
          { class: 'muted' },
          `id ${c.id} · channel ${c.channel} · site ${c.site ?? '—'} · enrolled ${fmtTime(c.enrolledAt)} · last contact ${fmtAgo(c.lastSeenAt)} · policy v${c.policyVersion} · revocation epoch ${c.revocationEpoch}`,
        ),
        h(
          'div',
          { class: 'row' },
          h('label', { for: 'console-revoke-reason' }, 'Reason for revocation', reason),
          revoke,
        ),
        result,
        h(
          'div',
          { class: 'grid' },
          h(
            'section',
            { class: 'card' },
            h('h2', {}, 'Event sequence health'),
            h('p', {}, `Last sequence number stored: ${detail.events.lastSeq}. Outbox backlog: `, outboxCell(c.outbox)),
            findings.length === 0
              ? h('p', { class: 'ok' }, 'No gaps or broken chains were found when events arrived.')
              : table(
                  'Integrity findings',
                  ['time', 'finding', 'detail'],
                  findings.map((f) => [
                    fmtTime(f.time),
                    f.type.replace('integrity-', ''),
                    JSON.stringify(f.detail ?? {}),
                  ]),
                  '',
                ),
            h('div', { class: 'row' }, verify),
            verifyBox,
          ),
          h(
            'section',
            { class: 'card' },
            h('h2', {}, 'Live sessions'),
            table(
              'Live sessions',
              ['operator', 'level', 'state', 'since'],
              detail.sessions.map((s) => [
                h(
                  'a',
                  { href: `#/operators/${encodeURIComponent(s.operatorId)}` },
                  people.get(s.operatorId) ?? s.operatorId,
                ),
                s.level,
                s.state,
                fmtTime(s.startedAt),
              ]),
              'Nobody is signed in on this console.',
            ),
          ),
        ),
      );
    } catch (error) {
      replace(body, errorBox(error));
    }
  };
  replace(main, h('p', {}, h('a', { href: '#/consoles' }, '← All consoles')), body);
  void load();
}
