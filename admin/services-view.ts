import { api, endpoint } from './api.js';
import { confirmedRevocation, revokeButton } from './confirm.js';
import { errorBox, fmtTime, h, pill, replace } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
import { actorName } from './operators-view.js';
import { pagedTable } from './paged-table.js';
import type { View } from './view.js';

interface ServiceView {
  id: string;
  name: string;
  actions: string[];
  enrolledAt: number;
  enrolledBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedBy: string | null;
  revokedReason: string | null;
  keys: { kid: string; createdAt: number; retiredAt: number | null }[];
  tokens: { action: string; issued: number; refused: number; lastIssuedAt: number | null }[];
}

/**
 * Service accounts (docs/service-accounts.md): each service with its keys, last use and the tokens
 * it got (and was refused) by action, a revoke button, and the one-time enrolment token for a new one.
 */
export const servicesView: View = (main) => {
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading services…'));
  const message = h('div', { id: 'service-message' });
  const name = h('input', {
    id: 'service-name',
    required: true,
    maxlength: 100,
    placeholder: 'e.g. nightly payments batch',
  });
  const actions = h('input', {
    id: 'service-actions',
    required: true,
    maxlength: 500,
    placeholder: 'customer.view payment.approve',
  });
  const hours = h('input', { id: 'service-token-hours', type: 'number', min: 1, max: 168, value: 24, size: 5 });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Issue a service enrolment token' },
    h('label', { for: 'service-name' }, 'Service', name),
    h('label', { for: 'service-actions' }, 'Actions (space-separated)', actions),
    h('label', { for: 'service-token-hours' }, 'Token valid for (hours)', hours),
    h('button', { type: 'submit', class: 'primary', id: 'service-token-issue' }, 'Issue enrolment token'),
  );
  // Search (name), a state filter, sort by a header and pages, served by the admin API like every other table.
  const load = () => {
    replace(
      list,
      pagedTable<ServiceView>({
        id: 'services',
        route: 'adminServices',
        listKey: 'services',
        caption: 'Service accounts',
        searchLabel: 'Search services',
        searchPlaceholder: 'part of the name, or its id',
        filters: [
          {
            key: 'state',
            label: 'State',
            options: [
              ['active', 'active'],
              ['revoked', 'revoked'],
            ],
          },
        ],
        defaultSort: 'name',
        defaultOrder: 'asc',
        columns: [
          { label: 'service', sort: 'name', cell: (s) => h('span', { title: s.id }, s.name) },
          {
            label: 'state',
            cell: (s) =>
              s.revokedAt === null
                ? pill('active', 'good')
                : pill(
                    `revoked ${fmtTime(s.revokedAt)}${s.revokedReason === null ? '' : `: ${s.revokedReason}`}`,
                    'bad',
                  ),
          },
          { label: 'actions', cell: (s) => s.actions.join(', ') },
          {
            label: 'keys',
            cell: (s) => {
              const current = s.keys.filter((k) => k.retiredAt === null);
              return `${current.map((k) => k.kid.slice(0, 12)).join(', ') || 'none'}${
                s.keys.length > current.length ? ` (${s.keys.length - current.length} retired)` : ''
              }`;
            },
          },
          {
            label: 'tokens by action (issued / refused)',
            cell: (s) =>
              s.tokens.length === 0
                ? 'none yet'
                : s.tokens.map((t) => `${t.action}: ${t.issued} / ${t.refused}`).join('; '),
          },
          { label: 'last used', sort: 'lastUsed', cell: (s) => fmtTime(s.lastUsedAt) },
          {
            label: 'enrolled',
            sort: 'enrolled',
            cell: (s, names) =>
              `${fmtTime(s.enrolledAt)} (token by ${actorName(s.enrolledBy, new Map(Object.entries(names.operators)))})`,
          },
          // Its audit trail: the Audit page filtered to the backend's events about this service.
          {
            label: 'audit',
            cell: (s) =>
              h(
                'a',
                {
                  href: `#/audit?service=${encodeURIComponent(s.id)}`,
                  title: `Events of the service ${s.name}`,
                },
                'events',
              ),
          },
          {
            label: '',
            cell: (s) => revokeButton(s.revokedAt !== null, `Revoke the service ${s.name}`, () => revokeService(s)),
          },
        ],
        empty: 'No service account yet. Issue an enrolment token above for each batch job or integration.',
      }),
    );
  };
  const revokeService = (s: ServiceView) =>
    confirmedRevocation({
      confirmation: {
        title: `Revoke the service "${s.name}"`,
        consequences: [
          'Its next token request is refused, on every node; its key can no longer be rotated.',
          'App servers following the revocation stream refuse its tokens that are still valid.',
          'This cannot be undone: enrol it again with a new token if it is still needed.',
        ],
        confirm: 'Revoke service',
      },
      revoke: () => api(...endpoint('adminServiceRevoke', { id: s.id }), { reason: 'revoked in the admin console' }),
      done: `Service "${s.name}" revoked`,
      message,
      then: load,
    });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const { token, expiresAt } = await api<{ token: string; expiresAt: number }>(
          ...endpoint('adminServiceEnrolmentTokenIssue'),
          {
            name: name.value.trim(),
            actions: actions.value.split(/[\s,]+/).filter((a) => a !== ''),
            ttlSeconds: Number(hours.value) * 3600,
          },
        );
        replace(
          message,
          oneTimeSecret({
            title: `Enrolment token for "${name.value.trim()}"`,
            value: token,
            expiresAt,
            id: 'new-service-token',
            instructions:
              'Give it to the platform engineer: the service enrols once with it and a key it generates (docs/service-accounts.md). It is shown only now and works once.',
          }),
        );
        load();
      } catch (error) {
        replace(message, errorBox(error));
      }
    })();
  });
  replace(
    main,
    h('h1', {}, 'Services'),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Enrol a service'),
      h(
        'p',
        { class: 'muted' },
        'Batch jobs and integrations get short action tokens by signing with their own key: no password, no standing secret. The policy\u2019s service channel says which actions services may do and which need a human session.',
      ),
      form,
      message,
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Services'), list),
  );
  load();
};
