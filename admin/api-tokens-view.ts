import { api, endpoint } from './api.js';
import { confirmedRevocation, revokeButton } from './confirm.js';
import { errorBox, fmtTime, h, pill, replace } from './dom.js';
import { actorName } from './operators-view.js';
import { pagedTable } from './paged-table.js';
import { oneTimeSecret } from './one-time-secret.js';
import type { View } from './view.js';

interface ApiToken {
  id: string;
  label: string;
  scope: 'read' | 'admin';
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
  uses: number;
  revokedAt: number | null;
  revokedReason: string | null;
  state: 'active' | 'expired' | 'revoked';
}

/** Admin API tokens: the credential for scripts (issued and revoked with a passkey step-up). */
export const apiTokensView: View = (main) => {
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading tokens…'));
  const message = h('div', { id: 'token-message' });
  const label = h('input', {
    id: 'api-token-label',
    required: true,
    maxlength: 100,
    placeholder: 'e.g. nightly report',
  });
  const scope = h(
    'select',
    { id: 'api-token-scope' },
    h('option', { value: 'read' }, 'read: look only'),
    h('option', { value: 'admin' }, 'admin: may also change and revoke'),
  );
  const days = h('input', { id: 'api-token-days', type: 'number', min: 1, max: 365, value: 90, size: 5 });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Issue an admin API token' },
    h('label', { for: 'api-token-label' }, 'What it is for', label),
    h('label', { for: 'api-token-scope' }, 'Scope', scope),
    h('label', { for: 'api-token-days' }, 'Valid for (days)', days),
    h('button', { type: 'submit', class: 'primary', id: 'api-token-issue' }, 'Issue token'),
  );
  // Search (label), filters, sort by a header and pages, served by the admin API like every other table.
  const load = () => {
    replace(
      list,
      pagedTable<ApiToken>({
        id: 'tokens',
        route: 'adminApiTokens',
        listKey: 'tokens',
        caption: 'Admin API tokens',
        searchLabel: 'Search tokens',
        searchPlaceholder: 'what it is for, or its id',
        filters: [
          {
            key: 'scope',
            label: 'Scope',
            options: [
              ['read', 'read'],
              ['admin', 'admin'],
            ],
          },
          {
            key: 'state',
            label: 'State',
            options: [
              ['active', 'active'],
              ['expired', 'expired'],
              ['revoked', 'revoked'],
            ],
          },
        ],
        defaultSort: 'created',
        defaultOrder: 'desc',
        columns: [
          { label: 'token', sort: 'label', cell: (t) => t.label },
          { label: 'scope', cell: (t) => t.scope },
          { label: 'state', cell: (t) => pill(t.state, t.state === 'active' ? 'good' : 'bad') },
          {
            label: 'issued',
            sort: 'created',
            cell: (t, names) =>
              `${fmtTime(t.createdAt)} by ${actorName(t.createdBy, new Map(Object.entries(names.operators)))}`,
          },
          { label: 'expires', sort: 'expires', cell: (t) => fmtTime(t.expiresAt) },
          { label: 'last used', sort: 'lastUsed', cell: (t) => fmtTime(t.lastUsedAt) },
          { label: 'uses', cell: (t) => t.uses },
          {
            label: '',
            cell: (t) => revokeButton(t.state === 'revoked', `Revoke the token ${t.label}`, () => revokeToken(t)),
          },
        ],
        empty: 'No admin API token yet. Issue one above for each script, with the narrowest scope it needs.',
      }),
    );
  };
  const revokeToken = (t: ApiToken) =>
    confirmedRevocation({
      confirmation: {
        title: `Revoke the admin API token "${t.label}"`,
        consequences: [
          'The script using it is refused from its next request, on every node.',
          'Its live streams close. This cannot be undone: issue a new token if the script still needs one.',
        ],
        confirm: 'Revoke token',
      },
      revoke: () => api(...endpoint('adminApiTokenRevoke', { id: t.id }), { reason: 'revoked in the admin console' }),
      done: `Token "${t.label}" revoked`,
      message,
      then: load,
    });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const { token, apiToken } = await api<{ token: string; apiToken: ApiToken }>(
          ...endpoint('adminApiTokenCreate'),
          { label: label.value.trim(), scope: scope.value, ttlDays: Number(days.value) },
        );
        replace(
          message,
          oneTimeSecret({
            title: `Admin API token "${apiToken.label}" (${apiToken.scope})`,
            value: token,
            expiresAt: apiToken.expiresAt,
            id: 'new-api-token',
            instructions:
              'Put it in the script\'s secret store and send it as "Authorization: Bearer <token>". It is shown only now; every use is recorded.',
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
    h('h1', {}, 'API tokens'),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Issue a token for a script'),
      h(
        'p',
        { class: 'muted' },
        'Scripts call the admin API with a token instead of a passkey. A read token can only look; an admin token can also change things. No token can issue tokens, change roles or make an admin. Issuing and revoking asks for your passkey.',
      ),
      form,
      message,
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Tokens'), list),
  );
  load();
};
