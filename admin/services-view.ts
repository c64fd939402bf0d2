import { api, endpoint } from './api.js';
import { confirmAction } from './confirm.js';
import { announce, errorBox, fmtTime, h, pill, replace, table } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
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
  const load = async () => {
    try {
      const { services } = await api<{ services: ServiceView[] }>(...endpoint('adminServices'));
      replace(
        list,
        table(
          'Service accounts',
          ['service', 'state', 'actions', 'keys', 'tokens by action (issued / refused)', 'last used', 'enrolled', ''],
          services.map((s) => {
            const revoke = h('button', { type: 'button', class: 'danger', disabled: s.revokedAt !== null }, 'Revoke');
            revoke.addEventListener('click', () => void revokeService(s));
            const current = s.keys.filter((k) => k.retiredAt === null);
            return [
              h('span', { title: s.id }, s.name),
              s.revokedAt === null
                ? pill('active', 'good')
                : pill(
                    `revoked ${fmtTime(s.revokedAt)}${s.revokedReason === null ? '' : `: ${s.revokedReason}`}`,
                    'bad',
                  ),
              s.actions.join(', '),
              `${current.map((k) => k.kid.slice(0, 12)).join(', ') || 'none'}${
                s.keys.length > current.length ? ` (${s.keys.length - current.length} retired)` : ''
              }`,
              s.tokens.length === 0
                ? 'none yet'
                : s.tokens.map((t) => `${t.action}: ${t.issued} / ${t.refused}`).join('; '),
              fmtTime(s.lastUsedAt),
              `${fmtTime(s.enrolledAt)} (token by ${s.enrolledBy})`,
              revoke,
            ];
          }),
          'No service account yet. Issue an enrolment token above for each batch job or integration.',
        ),
      );
    } catch (error) {
      replace(list, errorBox(error));
    }
  };
  const revokeService = async (s: ServiceView) => {
    try {
      const ok = await confirmAction({
        title: `Revoke the service "${s.name}"`,
        consequences: [
          'Its next token request is refused, on every node; its key can no longer be rotated.',
          'App servers following the revocation stream refuse its tokens that are still valid.',
          'This cannot be undone: enrol it again with a new token if it is still needed.',
        ],
        confirm: 'Revoke service',
      });
      if (!ok) return;
      await api(...endpoint('adminServiceRevoke', { id: s.id }), { reason: 'revoked in the admin console' });
      announce(`Service "${s.name}" revoked`);
      await load();
    } catch (error) {
      replace(message, errorBox(error));
    }
  };
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
        await load();
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
  void load();
};
