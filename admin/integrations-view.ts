import { api, endpoint } from './api.js';
import { barChart } from './charts.js';
import { confirmAction, confirmedRevocation, revokeButton } from './confirm.js';
import { actorName } from './operators-view.js';
import { pagedTable } from './paged-table.js';
import { announce, errorBox, fmtAgo, fmtTime, h, pill, replace, table } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
import type { View } from './view.js';

/**
 * Integrations: where Baton's signals go and where they come from, on one page, so the security team
 * sees at a glance what is behind. Shared Signals streams out (with pause, resume and verify, and a
 * picture of each stream's delivery latency: event recorded → SET accepted, p50 and p99 per minute), upstream
 * transmitters in (status with pause, resume, disable and verify; what the upstream answered; SETs held
 * while paused; last SET, last action, rejections by reason), SCIM directories, and the SIEM export's
 * sinks (cursor, lag, last error).
 */

interface SiemSink {
  name: string;
  kind: 'syslog' | 'http';
  target: string;
  configured: boolean;
  cursor: number;
  lag: number;
  delivered: number;
  lastDeliveredAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  failures: number;
  deliveringNode: string | null;
}

interface StreamOut {
  id: string;
  receiverId: string;
  /** Whose stream it is (the paged list names each stream's receiver). */
  receiverName?: string | null;
  audience: string | string[];
  method: 'push' | 'poll';
  endpointUrl: string;
  /** The event type URIs the stream delivers: those the receiver requested that Baton supports. */
  eventsDelivered: string[];
  status: 'enabled' | 'paused' | 'disabled';
  statusReason: string | null;
  backlog: number;
  lagMs: number;
  lastError: string | null;
  /** When the push at the head of its queue first failed (retried with backoff since); null once one is accepted. */
  failingSince: number | null;
  /** The most push attempts a waiting SET has had (0: none tried yet). */
  attempts: number;
  /** When the next failed SET is tried again (null: none failed). */
  nextAttemptAt: number | null;
  lastDeliveredAt: number | null;
  deliveredCount: number;
  deliveringNode: string | null;
  verification: { jti: string; requestedAt: number; acceptedAt: number | null; tookMs: number | null } | null;
  latency: {
    windowMinutes: number;
    count: number;
    p50Ms: number | null;
    p99Ms: number | null;
    minutes: { minute: number; count: number; p50Ms: number | null; p99Ms: number | null }[];
  };
}

/** A receiver's bearer token as the admin API lists it (never the token: only its SHA-256 is stored). */
interface Receiver {
  id: string;
  name: string;
  audience: string;
  scopes: string[];
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

const SCOPE_WORDS: Record<string, string> = {
  'ssf.manage': 'ssf.manage: create and change its streams',
  'ssf.read': 'ssf.read: read, verify and poll',
};

interface SourceIn {
  id: string;
  name: string;
  issuer: string;
  createdAt: number;
  disabledAt: number | null;
  accepted: number;
  lastSetAt: number | null;
  lastAction: string | null;
  rejections: { code: string; count: number; lastAt: number }[];
  status: 'enabled' | 'paused' | 'disabled';
  statusReason: string | null;
  statusChangedAt: number | null;
  /** Valid SETs held while paused: applied when resumed; dropped when disabled, but for those a resume is applying. */
  held: number;
  upstreamStatus: UpstreamStatus | null;
  /** Baton created a stream at the upstream: it can ask for a verification event, and change the stream's status. */
  verifiable: boolean;
  verification: {
    state: string;
    requestedAt: number;
    receivedAt: number | null;
    tookMs: number | null;
    error: string | null;
  } | null;
}

/** What the upstream last said about its stream's status (the admin API's `upstreamStatus`). */
interface UpstreamStatus {
  at: number;
  via: 'status-endpoint' | 'not-asked' | 'stream-updated';
  asked?: string;
  ok: boolean;
  httpStatus?: number;
  status?: string;
  error?: string;
}

/** A source's status as the page names it. */
const SOURCE_STATUS_WORDS = { enabled: 'accepting', paused: 'paused', disabled: 'disabled' } as const;

interface Directory {
  id: string;
  name: string;
  groupRoles: Record<string, string[]>;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

/** The host a push stream delivers to (the full URL may be long, and carry a path the receiver chose). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** An event type URI by its last segment (`…/caep/event-type/session-revoked`, `urn:baton:event:session-locked`). */
function shortEvent(uri: string): string {
  return uri.slice(Math.max(uri.lastIndexOf('/'), uri.lastIndexOf(':')) + 1) || uri;
}

/** The events a stream delivers, by short name, each with its full URI as a tooltip. */
function eventsCell(types: readonly string[]): HTMLElement | string {
  if (types.length === 0) return '—';
  return h(
    'span',
    { class: 'stream-events' },
    types.flatMap((uri, i) => [i === 0 ? '' : ', ', h('span', { class: 'event-type', title: uri }, shortEvent(uri))]),
  );
}

const STATUS_TONE = { enabled: 'good', paused: 'warn', disabled: 'bad' } as const;

/** How long the page waits for the receiver to take a verification event before saying it has not yet. */
const VERIFY_WAIT_MS = 15_000;

function fmtMs(ms: number | null): string {
  if (ms === null) return '—';
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

/** What the last verification of a stream came to, in words. */
function verificationText(v: StreamOut['verification'], lastError: string | null): string {
  if (v === null) return 'never asked';
  if (v.acceptedAt !== null) return `accepted by the receiver in ${fmtMs(v.tookMs)} (${fmtAgo(v.acceptedAt)})`;
  return `sent ${fmtAgo(v.requestedAt)}, not accepted yet${lastError === null ? '' : `: ${lastError}`}`;
}

/** A stream's delivery latency over the last hour, p50 and p99 per minute (bucket bounds: "at most"). */
function latencyPicture(stream: StreamOut, receiver: string): HTMLElement {
  const { latency } = stream;
  const minuteLabel = (ms: number) => fmtTime(ms, { zone: false }).slice(-5);
  const figure = barChart({
    title: `Delivery latency to ${receiver}`,
    summary:
      latency.count === 0
        ? `No SET delivered to ${receiver} in the last hour`
        : `Event recorded to SET accepted by ${receiver}, last hour: p50 at most ${fmtMs(latency.p50Ms)}, p99 at most ${fmtMs(latency.p99Ms)}, ${latency.count} SETs`,
    categories: latency.minutes.map((m) => minuteLabel(m.minute)),
    series: [
      { label: 'p50', className: 'bar-ok', values: latency.minutes.map((m) => m.p50Ms ?? 0) },
      { label: 'p99', className: 'bar-warn', values: latency.minutes.map((m) => m.p99Ms ?? 0) },
    ],
    unit: ' ms',
    empty: `No SET delivered to ${receiver} in the last hour.`,
  });
  figure.classList.add('ssf-latency');
  figure.dataset.stream = stream.id;
  if (latency.count > 0) {
    figure.append(
      h(
        'p',
        { class: 'latency-summary' },
        `Last hour: p50 ≤ ${fmtMs(latency.p50Ms)} · p99 ≤ ${fmtMs(latency.p99Ms)} · ${latency.count} SETs delivered (event recorded → SET accepted by the receiver)`,
      ),
    );
  }
  return figure;
}

/** A section that loads itself; a failure shows in the section, the others still load. */
function section(title: string, id: string, load: (box: HTMLElement) => Promise<void>): HTMLElement {
  const box = h('section', { id }, h('h2', {}, title), h('p', { class: 'muted' }, 'Loading…'));
  load(box).catch((error: unknown) => replace(box, h('h2', {}, title), errorBox(error)));
  return box;
}

function siemSection(): HTMLElement {
  const title = 'SIEM export';
  return section(title, 'siem-sinks', async (box) => {
    const { sinks } = await api<{ sinks: SiemSink[] }>(...endpoint('adminSiem'));
    replace(
      box,
      h('h2', {}, title),
      table(
        'SIEM sinks',
        ['sink', 'target', 'cursor', 'behind', 'delivered', 'last delivery', 'state', 'delivering node'],
        sinks.map((s) => [
          s.configured ? s.name : `${s.name} (no longer configured)`,
          s.target,
          String(s.cursor),
          s.lag === 0 ? 'up to date' : `${s.lag} event(s)`,
          String(s.delivered),
          s.lastDeliveredAt === null ? 'never' : fmtAgo(s.lastDeliveredAt),
          s.failures > 0
            ? h(
                'span',
                {},
                pill(`failing (${s.failures} tries)`, 'bad'),
                ' ',
                h('span', { class: 'muted' }, `${s.lastError ?? ''} · ${fmtTime(s.lastErrorAt)}`),
              )
            : pill('delivering', 'good'),
          s.deliveringNode ?? '—',
        ]),
        'No SIEM sink is configured (siem.sinks in the backend config file; see docs/siem.md).',
      ),
    );
  });
}

function streamsSection(): HTMLElement {
  const title = 'Shared Signals streams out';
  // The outcome of the last Verify, kept across reloads of the table.
  const result = h('p', { class: 'verify-result', role: 'status', 'aria-live': 'polite' });
  const problems = h('div', { id: 'ssf-streams-message' });
  const pictures = h('div', { id: 'ssf-stream-pictures' });
  const box = h('section', { id: 'ssf-streams' }, h('h2', {}, title));
  const receiverName = (s: StreamOut) => s.receiverName ?? s.receiverId;
  /** One stream as it is now (searched by its id: one row, never the whole list). */
  const current = async (id: string): Promise<StreamOut | undefined> =>
    (await api<{ streams: StreamOut[] }>(...endpoint('adminSsfStreams', {}, { q: id, limit: 1 }))).streams.find(
      (s) => s.id === id,
    );
  const setStatus = async (stream: StreamOut, status: 'enabled' | 'paused') => {
    const audience = receiverName(stream);
    const ok = await confirmAction({
      title: status === 'paused' ? `Pause the stream to ${audience}` : `Resume the stream to ${audience}`,
      consequences:
        status === 'paused'
          ? ['Events keep queueing for this receiver but are not sent until it is resumed.']
          : [`${stream.backlog} queued event(s) are sent, in order.`],
      confirm: status === 'paused' ? 'Pause stream' : 'Resume stream',
      tone: 'primary',
    });
    if (!ok) return;
    await api(...endpoint('adminSsfStreamStatus', { id: stream.id }), { status });
    announce(`Stream ${status === 'paused' ? 'paused' : 'resumed'}`);
    load();
  };
  /** Sends a verification event, then shows what became of it: accepted (and how fast) or not yet, and why. */
  const verify = async (stream: StreamOut) => {
    const receiver = receiverName(stream);
    result.textContent = `Sending a verification event to ${receiver}…`;
    const sent = await api<{ jti: string }>(...endpoint('adminSsfStreamVerify', { id: stream.id }), {});
    const deadline = Date.now() + VERIFY_WAIT_MS;
    for (;;) {
      const now = await current(stream.id);
      const v = now?.verification;
      if (v?.jti === sent.jti && v.acceptedAt !== null) {
        result.textContent = `Verified: ${receiver} accepted the verification event in ${fmtMs(v.tookMs)}.`;
        result.className = 'verify-result good';
        announce(result.textContent);
        load();
        return;
      }
      // The receiver refused this very SET (its last error names the jti), or it is taking too long.
      const refused = now?.lastError?.startsWith(`${sent.jti}:`) === true;
      if (refused || Date.now() > deadline || now === undefined) {
        const why = refused
          ? ` The receiver answered: ${(now?.lastError ?? '').slice(sent.jti.length + 2)}.`
          : now?.lastError === null || now === undefined
            ? ''
            : ` Last error: ${now.lastError}.`;
        result.textContent = `Not verified: ${receiver} has not accepted the verification event.${why} It stays queued and is sent again until the receiver takes it.`;
        result.className = 'verify-result bad';
        announce(result.textContent);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  const actions = (s: StreamOut) => {
    const action =
      s.status === 'enabled'
        ? h('button', { type: 'button', class: 'pause-stream' }, 'Pause')
        : s.status === 'paused'
          ? h('button', { type: 'button', class: 'resume-stream' }, 'Resume')
          : null;
    action?.addEventListener('click', () => {
      void setStatus(s, s.status === 'enabled' ? 'paused' : 'enabled').catch((error: unknown) =>
        replace(problems, errorBox(error)),
      );
    });
    const verifyButton =
      s.status === 'disabled' ? null : h('button', { type: 'button', class: 'verify-stream' }, 'Verify');
    verifyButton?.addEventListener('click', () => {
      verifyButton.disabled = true;
      void verify(s)
        .catch((error: unknown) => replace(problems, errorBox(error)))
        .finally(() => (verifyButton.disabled = false));
    });
    return h('span', { class: 'actions' }, action, verifyButton);
  };
  const tableBox = h('div', {});
  // Searched (the receiver's name, or the stream's id), filtered by status and paged by the admin API;
  // its place is kept in the address under `streams.` (the page has more than one table).
  const load = () =>
    replace(
      tableBox,
      pagedTable<StreamOut>({
        id: 'streams',
        scope: 'streams',
        route: 'adminSsfStreams',
        listKey: 'streams',
        caption: 'Shared Signals streams out',
        searchLabel: 'Search streams',
        searchPlaceholder: 'receiver name, or stream id',
        filters: [
          {
            key: 'status',
            label: 'Status',
            options: [
              ['enabled', 'enabled'],
              ['paused', 'paused'],
              ['disabled', 'disabled'],
            ],
          },
        ],
        // Oldest first, as the streams were created (the order the page always had).
        defaultSort: 'created',
        defaultOrder: 'asc',
        limit: 10,
        columns: [
          { label: 'receiver', cell: (s) => h('span', { title: s.id }, receiverName(s)) },
          { label: 'delivery', cell: (s) => (s.method === 'push' ? `push to ${hostOf(s.endpointUrl)}` : 'poll') },
          { label: 'events', cell: (s) => eventsCell(s.eventsDelivered) },
          {
            label: 'status',
            sort: 'status',
            cell: (s) =>
              h('span', {}, pill(s.status, STATUS_TONE[s.status]), s.statusReason === null ? '' : ` ${s.statusReason}`),
          },
          { label: 'queued', cell: (s) => String(s.backlog) },
          { label: 'oldest queued', cell: (s) => (s.backlog === 0 ? '—' : `${Math.round(s.lagMs / 1000)} s`) },
          { label: 'delivered', cell: (s) => String(s.deliveredCount) },
          { label: 'last delivery', cell: (s) => (s.lastDeliveredAt === null ? 'never' : fmtAgo(s.lastDeliveredAt)) },
          {
            label: 'latency p50 / p99 (1 h)',
            cell: (s) =>
              s.method === 'poll'
                ? 'receiver polls'
                : s.latency.count === 0
                  ? '—'
                  : `${fmtMs(s.latency.p50Ms)} / ${fmtMs(s.latency.p99Ms)}`,
          },
          {
            label: 'last error',
            // Since when pushes fail: the head of the queue is retried with backoff until the receiver accepts it.
            cell: (s) =>
              s.failingSince === null
                ? (s.lastError ?? '—')
                : h(
                    'span',
                    {},
                    s.lastError ?? '—',
                    h('span', { class: 'muted failing-since' }, ` · failing since ${fmtTime(s.failingSince)}`),
                    s.attempts > 0 &&
                      h(
                        'span',
                        { class: 'muted retries' },
                        ` · ${s.attempts} attempt${s.attempts === 1 ? '' : 's'}` +
                          (s.nextAttemptAt === null ? '' : `, next ${fmtTime(s.nextAttemptAt)}`),
                      ),
                  ),
          },
          { label: 'verification', cell: (s) => verificationText(s.verification, s.lastError) },
          { label: '', cell: actions },
        ],
        empty: 'No receiver has created a stream yet (docs/shared-signals.md).',
        // Push streams of this page only: a poll stream's latency is the receiver's polling rhythm, not Baton's delivery.
        onPage: (streams) =>
          replace(
            pictures,
            streams
              .filter((s) => s.status !== 'disabled' && s.method === 'push')
              .map((s) => latencyPicture(s, receiverName(s))),
          ),
      }),
    );
  box.append(tableBox, problems, result, pictures);
  load();
  return box;
}

/** Who issued a receiver token, in words ("the bootstrap token", an admin's name, a script's token). */
function issuer(actor: string, people: ReadonlyMap<string, string>): string {
  if (actor.startsWith('api-token:')) return `the API token ${actor.slice('api-token:'.length)}`;
  return actorName(actor, people);
}

/**
 * The bearer tokens of the Shared Signals receivers (scopes `ssf.manage`, `ssf.read`): issue one
 * (shown once, with copy, print and QR), list them (state, scopes, audience, last use, streams) and
 * revoke one with a confirmation that names it. Issuing and revoking ask for a passkey step-up.
 */
function receiversSection(): HTMLElement {
  const title = 'Shared Signals receiver tokens';
  const message = h('div', { id: 'receiver-token-message' });
  const list = h('div', { id: 'ssf-receivers-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const name = h('input', {
    id: 'receiver-name',
    required: true,
    maxlength: 100,
    placeholder: 'e.g. Core banking',
  });
  const audience = h('input', {
    id: 'receiver-audience',
    maxlength: 512,
    size: 28,
    placeholder: 'default: <issuer>/ssf/receivers/<id>',
  });
  const scopeBoxes = (['ssf.manage', 'ssf.read'] as const).map((scope) => ({
    scope,
    box: h('input', {
      type: 'checkbox',
      id: `receiver-scope-${scope.replace('.', '-')}`,
      value: scope,
      checked: scope === 'ssf.manage',
    }),
  }));
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Issue a receiver token' },
    h('label', { for: 'receiver-name' }, 'Receiver', name),
    h('label', { for: 'receiver-audience' }, 'Audience it expects (optional)', audience),
    h(
      'fieldset',
      { class: 'checks' },
      h('legend', {}, 'Scopes'),
      scopeBoxes.map(({ scope, box }) =>
        h('label', { for: box.id, class: 'check' }, box, ` ${SCOPE_WORDS[scope] ?? scope}`),
      ),
    ),
    h('button', { type: 'submit', class: 'primary', id: 'receiver-issue' }, 'Issue receiver token'),
  );
  const load = async () => {
    const [{ receivers }, { streams }] = await Promise.all([
      api<{ receivers: Receiver[] }>(...endpoint('adminSsfReceivers')),
      // At most 10 streams per receiver, and receivers are issued one by one by people: one page of 1,000 holds them.
      api<{ streams: { receiverId: string; status: string }[] }>(...endpoint('adminSsfStreams', {}, { limit: 1000 })),
    ]);
    const streamsOf = (id: string) => streams.filter((s) => s.receiverId === id && s.status !== 'disabled').length;
    // Who issued each token, by name (the ids on this list only).
    const issuers = receivers.flatMap((r) =>
      r.createdBy.startsWith('operator:') ? [r.createdBy.slice('operator:'.length)] : [],
    );
    const { names } = await api<{ names: { operators: Record<string, string> } }>(
      ...endpoint('adminNames', {}, { operators: [...new Set(issuers)].slice(0, 200).join(',') }),
    );
    const people = new Map(Object.entries(names.operators));
    replace(
      list,
      table(
        'Shared Signals receiver tokens',
        ['receiver', 'scopes', 'audience', 'state', 'issued', 'last used', 'streams', ''],
        [...receivers]
          .sort((a, b) => b.createdAt - a.createdAt)
          .map((r) => {
            const revoke = revokeButton(r.revokedAt !== null, `Revoke the receiver token of ${r.name}`, () =>
              revokeReceiver(r, streamsOf(r.id)),
            );
            return [
              r.name,
              r.scopes.join(', '),
              h('span', { class: 'mono' }, r.audience),
              r.revokedAt === null ? pill('active', 'good') : pill(`revoked ${fmtTime(r.revokedAt)}`, 'bad'),
              `${fmtTime(r.createdAt)} by ${issuer(r.createdBy, people)}`,
              r.lastUsedAt === null ? 'never' : fmtAgo(r.lastUsedAt),
              String(streamsOf(r.id)),
              revoke,
            ];
          }),
        'No receiver token yet. Issue one above for each system that subscribes to Baton’s signals.',
      ),
    );
  };
  const revokeReceiver = (r: Receiver, streamCount: number) =>
    confirmedRevocation({
      confirmation: {
        title: `Revoke the receiver token of ${r.name}`,
        consequences: [
          `${r.name} (audience ${r.audience}) is refused from its next request: it can no longer create, change, read or poll its streams.`,
          streamCount === 0
            ? 'It has no stream.'
            : `Its ${streamCount === 1 ? 'stream stays' : `${streamCount} streams stay`} and ${streamCount === 1 ? 'keeps' : 'keep'} queueing events: pause or disable ${streamCount === 1 ? 'it' : 'them'} in the streams table above.`,
          'This cannot be undone: issue a new token if the receiver still needs one.',
        ],
        confirm: 'Revoke receiver token',
      },
      revoke: () => api(...endpoint('adminSsfReceiverRevoke', { id: r.id }), {}),
      done: `The receiver token of ${r.name} is revoked.`,
      show: true,
      message,
      then: load,
    });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const scopes = scopeBoxes.filter(({ box }) => box.checked).map(({ scope }) => scope);
        if (scopes.length === 0) {
          replace(message, h('div', { class: 'error', role: 'alert' }, 'Choose at least one scope.'));
          return;
        }
        const { receiver, token } = await api<{ receiver: Receiver; token: string }>(
          ...endpoint('adminSsfReceiverIssue'),
          {
            name: name.value.trim(),
            scopes,
            ...(audience.value.trim() === '' ? {} : { audience: audience.value.trim() }),
          },
        );
        replace(
          message,
          oneTimeSecret({
            title: `Receiver token for ${receiver.name}`,
            value: token,
            id: 'new-receiver-token',
            instructions: `Give it to whoever runs ${receiver.name}: it sends it as "Authorization: Bearer <token>" to Baton's stream management API (${receiver.scopes.join(', ')}), and expects "aud": "${receiver.audience}" in every SET.`,
          }),
        );
        name.value = '';
        audience.value = '';
        await load();
      } catch (error) {
        replace(message, errorBox(error));
      }
    })();
  });
  return section(title, 'ssf-receivers', async (box) => {
    replace(
      box,
      h('h2', {}, title),
      h(
        'p',
        { class: 'muted' },
        'Each system that subscribes to Baton’s signals (core banking, the SIEM) gets its own token. Baton keeps only its SHA-256; it is shown once. Issuing and revoking asks for your passkey.',
      ),
      form,
      message,
      list,
    );
    await load();
  });
}

/** What the upstream last said about its stream's status, in words. */
function upstreamText(u: UpstreamStatus | null): string {
  if (u === null) return 'not asked yet';
  const when = fmtAgo(u.at);
  if (u.via === 'stream-updated') return `announced ${u.status ?? '?'} (${when})`;
  if (u.via === 'not-asked') return `not asked to go ${u.asked ?? '?'}: no access token given (${when})`;
  if (u.ok) return `${u.status ?? u.asked ?? 'changed'}, as asked (${when})`;
  return `not changed: ${u.error ?? `HTTP ${u.httpStatus ?? '?'}`} (${when})`;
}

/** What the last verification of a source came to, in words. */
function sourceVerificationText(s: SourceIn): string {
  const v = s.verification;
  if (!s.verifiable) return '— (push only)';
  if (v === null) return 'never asked';
  if (v.receivedAt !== null) return `verification event received in ${fmtMs(v.tookMs)} (${fmtAgo(v.receivedAt)})`;
  if (v.error !== null) return `asked ${fmtAgo(v.requestedAt)}, refused: ${v.error}`;
  return `asked ${fmtAgo(v.requestedAt)}, not received yet`;
}

/** A cell of a source with no stream Baton created at its upstream, saying why there is nothing to ask. */
function pushOnly(s: SourceIn, text: string): HTMLElement | string {
  return s.verifiable
    ? text
    : h(
        'span',
        {
          title:
            'Baton did not create this source’s stream (it pushes to Baton, or its keys are pinned): there is no stream to verify or to pause at the upstream',
        },
        text,
      );
}

/** A labelled input placed in a confirmation dialog (the upstream's access token, the reason). */
function dialogInput(id: string, label: string, attrs: Record<string, string | number | boolean> = {}) {
  const input = h('input', { id, autocomplete: 'off', spellcheck: 'false', size: 40, ...attrs });
  return { input, field: h('label', { for: id, class: 'dialog-field' }, label, ' ', input) };
}

/**
 * The upstream transmitters Baton receives from: each one's status (accepting, paused with the SETs it
 * holds, disabled) with Pause, Resume and Disable (confirmed), what the upstream answered when asked to
 * change its stream too, and Verify for a source whose stream Baton created (the upstream sends a
 * verification event carrying the state Baton chose; the page says when it came and how long it took).
 */
function sourcesSection(): HTMLElement {
  const title = 'Shared Signals sources in';
  const message = h('div', { id: 'ssf-sources-message', role: 'status', 'aria-live': 'polite' });
  const tableBox = h('div', {});
  const current = async (id: string): Promise<SourceIn> =>
    (await api<{ transmitter: SourceIn }>(...endpoint('adminSsfTransmitter', { id }))).transmitter;
  /** The outcome, in words: what was done (ok), and a problem the admin should see (error), if any. */
  const say = (done: string, problem?: string) => {
    replace(
      message,
      done === '' ? null : h('div', { class: 'ok' }, done),
      problem === undefined ? null : h('div', { class: 'error' }, problem),
    );
    announce(problem === undefined ? done : `${done} ${problem}`);
  };

  const setStatus = async (source: SourceIn, status: 'enabled' | 'paused' | 'disabled') => {
    const reason = dialogInput('source-status-reason', 'Reason (optional, recorded)', { maxlength: 500 });
    const token = dialogInput(
      'source-access-token',
      'Upstream access token (optional: to change its stream too; used once, not stored)',
      {
        type: 'password',
        maxlength: 4096,
      },
    );
    const upstreamLine = source.verifiable
      ? token.field
      : 'There is no stream Baton created at the upstream: only Baton’s side changes.';
    const consequences =
      status === 'paused'
        ? [
            `SETs from ${source.name} are checked and held, not acted on: no one is revoked until it is resumed.`,
            'Nothing is lost: resuming applies the held SETs in order; disabling drops them (but for any a resume is applying).',
            reason.field,
            upstreamLine,
          ]
        : status === 'enabled' && source.status === 'enabled'
          ? [
              // Enabled but still holding SETs (a resume stopped partway): new SETs already act as they arrive.
              `The ${source.held} SET(s) still held are applied now, oldest first (they may revoke operators). New SETs from ${source.name} already act as they arrive.`,
              reason.field,
              upstreamLine,
            ]
          : status === 'enabled'
            ? [
                source.held === 0
                  ? `SETs from ${source.name} act again as they arrive.`
                  : `The ${source.held} SET(s) held are applied now, oldest first (they may revoke operators), then new SETs act as they arrive.`,
                reason.field,
                upstreamLine,
              ]
            : [
                `${source.name}’s pushes are refused from now on (access_denied), and nothing is held for it.`,
                source.held === 0
                  ? 'It holds no SET.'
                  : `The ${source.held} SET(s) it holds are dropped, never applied, except any a resume is applying or has begun to apply: those are finished (the event lists them).`,
                reason.field,
                upstreamLine,
              ];
    const ok = await confirmAction({
      title:
        status === 'paused'
          ? `Pause the source ${source.name}`
          : status === 'enabled' && source.status === 'enabled'
            ? `Apply the SETs held for ${source.name}`
            : status === 'enabled'
              ? `Resume the source ${source.name}`
              : `Disable the source ${source.name}`,
      consequences,
      confirm:
        status === 'paused'
          ? 'Pause source'
          : status === 'enabled' && source.status === 'enabled'
            ? 'Apply held SETs'
            : status === 'enabled'
              ? 'Resume source'
              : 'Disable source',
      tone: status === 'disabled' ? 'danger' : 'primary',
    });
    if (!ok) return;
    const answer = await api<{
      transmitter: SourceIn;
      upstream: UpstreamStatus | null;
      applied?: number;
      remaining?: number;
      droppedSets?: number;
    }>(...endpoint('adminSsfTransmitterStatus', { id: source.id }), {
      status,
      ...(reason.input.value.trim() === '' ? {} : { reason: reason.input.value.trim() }),
      ...(token.input.value === '' ? {} : { accessToken: token.input.value }),
    });
    const heldOnly = status === 'enabled' && source.status === 'enabled';
    const done = heldOnly
      ? `${source.name}: ${answer.applied ?? 0} held SET(s) applied${answer.remaining ? `, ${answer.remaining} still held (Apply held SETs to go on)` : ''}.`
      : status === 'paused'
        ? `${source.name} is paused: its SETs are held.`
        : status === 'enabled'
          ? `${source.name} is accepting again${answer.applied === undefined || answer.applied === 0 ? '' : `: ${answer.applied} held SET(s) applied`}${answer.remaining ? `, ${answer.remaining} still held (Apply held SETs to go on)` : ''}.`
          : `${source.name} is disabled${answer.droppedSets ? `: ${answer.droppedSets} held SET(s) dropped` : ''}.`;
    const upstream = answer.upstream;
    if (upstream === null) say(done);
    else if (upstream.via === 'not-asked')
      say(`${done} The upstream was not asked (no access token given): its stream keeps its status.`);
    else if (upstream.ok) say(`${done} The upstream set its stream to ${upstream.status ?? status}.`);
    else say(done, `The upstream did not change its stream: ${upstream.error ?? 'no answer'}.`);
    load();
  };

  const verify = async (source: SourceIn) => {
    const token = dialogInput('source-verify-token', 'Upstream access token (used once, not stored)', {
      type: 'password',
      maxlength: 4096,
    });
    const ok = await confirmAction({
      title: `Verify the source ${source.name}`,
      consequences: [
        `${source.name} is asked to send a verification event over its stream, carrying a state Baton chooses.`,
        'The page shows when it arrives and how long it took.',
        token.field,
      ],
      confirm: 'Ask for a verification event',
      tone: 'primary',
    });
    if (!ok) return;
    if (token.input.value === '') {
      say('', 'Not asked: the upstream’s access token is needed to ask it for a verification event.');
      return;
    }
    say(`Asking ${source.name} for a verification event…`);
    const asked = await api<{ state: string }>(...endpoint('adminSsfTransmitterVerify', { id: source.id }), {
      accessToken: token.input.value,
    });
    const deadline = Date.now() + VERIFY_WAIT_MS;
    for (;;) {
      const now = await current(source.id);
      const v = now.verification;
      if (v?.state === asked.state && v.receivedAt !== null) {
        say(`Verified: ${source.name} sent the verification event in ${fmtMs(v.tookMs)}.`);
        load();
        return;
      }
      if (v?.state !== asked.state || Date.now() > deadline) {
        say('', `Not verified: no verification event carrying Baton’s state has come from ${source.name} yet.`);
        load();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  const failed = (error: unknown) => replace(message, errorBox(error));
  const button = (label: string, cls: string, what: string, onClick: () => Promise<void>, tone = '') => {
    const b = h('button', { type: 'button', class: `${cls} ${tone}`.trim(), 'aria-label': what }, label);
    b.addEventListener('click', () => {
      b.disabled = true;
      void onClick()
        .catch(failed)
        .finally(() => (b.disabled = false));
    });
    return b;
  };
  const actions = (t: SourceIn) =>
    h(
      'span',
      { class: 'actions' },
      t.status === 'enabled' &&
        button('Pause', 'pause-source', `Pause the source ${t.name}`, () => setStatus(t, 'paused')),
      t.status !== 'enabled' &&
        button('Resume', 'resume-source', `Resume the source ${t.name}`, () => setStatus(t, 'enabled')),
      // A resume that stopped partway leaves the source enabled with SETs still held: they can be applied from here.
      t.status === 'enabled' &&
        t.held > 0 &&
        button('Apply held SETs', 'apply-held', `Apply the SETs held for ${t.name}`, () => setStatus(t, 'enabled')),
      t.status === 'enabled' &&
        t.verifiable &&
        button('Verify', 'verify-source', `Verify the source ${t.name}`, () => verify(t)),
      t.status !== 'disabled' &&
        button('Disable', 'disable-source', `Disable the source ${t.name}`, () => setStatus(t, 'disabled'), 'danger'),
    );

  // Searched (name or issuer), filtered and paged by the admin API; its place is kept under `sources.`.
  const load = () =>
    replace(
      tableBox,
      pagedTable<SourceIn>({
        id: 'sources',
        scope: 'sources',
        route: 'adminSsfTransmitters',
        listKey: 'transmitters',
        caption: 'Shared Signals sources in',
        searchLabel: 'Search sources',
        searchPlaceholder: 'name or issuer',
        filters: [
          {
            key: 'state',
            label: 'State',
            options: [
              ['enabled', 'accepting'],
              ['paused', 'paused'],
              ['disabled', 'disabled'],
            ],
          },
        ],
        defaultSort: 'name',
        defaultOrder: 'asc',
        limit: 10,
        columns: [
          {
            label: 'source',
            sort: 'name',
            cell: (t) => h('span', {}, t.name, h('br'), h('span', { class: 'muted source-issuer' }, t.issuer)),
          },
          {
            label: 'state',
            cell: (t) =>
              h(
                'span',
                { class: 'source-status' },
                pill(SOURCE_STATUS_WORDS[t.status], STATUS_TONE[t.status]),
                t.statusReason === null ? '' : ` ${t.statusReason}`,
                t.held > 0 && h('span', { class: 'held' }, ` · ${t.held} SET(s) held`),
                t.statusChangedAt !== null && h('span', { class: 'muted' }, ` · since ${fmtTime(t.statusChangedAt)}`),
                // The stream Baton created at the upstream: what the upstream last said about its status.
                t.verifiable &&
                  h(
                    'span',
                    { class: 'upstream-status' },
                    h('br'),
                    `upstream stream: ${upstreamText(t.upstreamStatus)}`,
                  ),
              ),
          },
          {
            label: 'SETs accepted',
            cell: (t) => `${t.accepted}, last ${t.lastSetAt === null ? 'never' : fmtAgo(t.lastSetAt)}`,
          },
          { label: 'last action', cell: (t) => t.lastAction ?? '—' },
          {
            label: 'rejections by reason',
            cell: (t) =>
              t.rejections.length === 0 ? 'none' : t.rejections.map((r) => `${r.code}: ${r.count}`).join(', '),
          },
          { label: 'verification', cell: (t) => pushOnly(t, sourceVerificationText(t)) },
          { label: 'registered', sort: 'created', cell: (t) => fmtTime(t.createdAt) },
          { label: '', cell: actions },
        ],
        empty: 'No upstream transmitter is registered.',
      }),
    );
  load();
  return h('section', { id: 'ssf-sources' }, h('h2', {}, title), tableBox, message);
}

function directoriesSection(): HTMLElement {
  const title = 'SCIM directories';
  return section(title, 'scim-directories', async (box) => {
    const { directories } = await api<{ directories: Directory[] }>(...endpoint('adminScimDirectories'));
    replace(
      box,
      h('h2', {}, title),
      table(
        'SCIM directories',
        ['directory', 'state', 'groups → roles', 'last request'],
        directories.map((d) => [
          d.name,
          d.revokedAt === null ? pill('active', 'good') : pill('token revoked', 'bad'),
          Object.entries(d.groupRoles)
            .map(([group, roles]) => `${group} → ${roles.join(', ')}`)
            .join('; ') || 'none',
          d.lastUsedAt === null ? 'never' : fmtAgo(d.lastUsedAt),
        ]),
        'No directory provisions operators yet (docs/scim.md).',
      ),
    );
  });
}

export const integrationsView: View = (main) => {
  replace(
    main,
    h('h1', {}, 'Integrations'),
    streamsSection(),
    receiversSection(),
    sourcesSection(),
    directoriesSection(),
    siemSection(),
  );
};
