import type { ConsoleView, OperatorView } from '../shared/admin-views.js';
import type { AuthenticatorModelView } from '../shared/authenticator-metadata.js';
import { api, endpoint } from './api.js';
import { authenticatorMetadataCard, modelCell } from './authenticator-metadata-card.js';
import { confirmAction, confirmedRevocation, count, revokeButton } from './confirm.js';
import { announce, errorBox, fmtAgo, fmtTime, h, pill, replace, table } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
import { operatorImportCard } from './operator-import.js';
import { pagedTable, type Names } from './paged-table.js';
import { showPropagation } from './propagation.js';
import type { View } from './view.js';

type Operator = OperatorView;
interface Credential {
  id: string;
  deviceBound: boolean;
  aaguid: string;
  attestationFmt: string;
  attestationTrust: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
  /** Set when its signature counter went backwards (possible copy), until an admin reinstates or revokes it. */
  suspendedAt: number | null;
  suspendedReason: string | null;
  registeredOnConsole: string;
  /** From the FIDO metadata BLOB; null when none is loaded or it does not list the model. */
  authenticator: AuthenticatorModelView | null;
}
interface SuspendedCredential extends Omit<Credential, 'authenticator'> {
  operatorId: string;
  operatorName: string;
}
interface Code {
  id: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  state: string;
}
interface Session {
  id: string;
  consoleId: string;
  credentialId: string;
  level: string;
  state: string;
  startedAt: number;
}

const ZERO_AAGUID = '00000000-0000-0000-0000-000000000000';

/** A passkey as an admin names it: its model when the metadata knows it, else the start of its id. */
export function passkeyName(c: Pick<Credential, 'id' | 'authenticator'>): string {
  return c.authenticator?.model ?? `passkey ${c.id.slice(0, 10)}…`;
}

/** Who did it, by name: `operator:grace` → "Grace Admin"; the bootstrap token says so. */
export function actorName(actor: string, operators: ReadonlyMap<string, string>): string {
  if (actor === 'admin:bootstrap') return 'the bootstrap token';
  if (actor === 'system:defaults') return 'Baton (the built-in defaults)';
  const id = actor.replace(/^operator:/, '');
  return operators.get(id) ?? id;
}

/** A console's name for people: its name and site, or its id when it has no name. */
export function consoleName(c: Pick<ConsoleView, 'id' | 'name' | 'site'> | undefined, id: string): string {
  if (c === undefined) return id;
  return `${c.name ?? c.id}${c.site === null ? '' : ` (${c.site})`}`;
}

/** "on 2 consoles (Front desk, Teller 3)" for the sessions a revocation ends. */
function sessionsEnding(
  sessions: Session[],
  consoles: ReadonlyMap<string, Pick<ConsoleView, 'id' | 'name' | 'site'>>,
  none = 'No live session ends: this operator is signed in nowhere right now.',
): string {
  if (sessions.length === 0) return none;
  const where = [...new Set(sessions.map((s) => consoleName(consoles.get(s.consoleId), s.consoleId)))];
  return `${count(sessions.length, 'live session')} on ${count(where.length, 'console')} ${sessions.length === 1 ? 'ends' : 'end'} now (${where.join(', ')}).`;
}

function credentialState(c: Credential): HTMLElement {
  if (c.revokedAt !== null) return pill('revoked', 'bad');
  if (c.suspendedAt !== null) return pill('suspended — possible copy', 'bad');
  return pill('active', 'good');
}

/**
 * On the operators page: the passkeys suspended as possible copies, each linked to its operator,
 * searched and paged by the admin API (its place kept under `suspended.` in the address). Shown
 * only while there is one.
 */
async function suspendedList(): Promise<HTMLElement | null> {
  const { total } = await api<{ total: number }>(...endpoint('adminCredentialsSuspended', {}, { limit: 1 }));
  if (total === 0) return null;
  return h(
    'section',
    { class: 'card', role: 'alert', id: 'suspended-passkeys-all', 'aria-labelledby': 'h-suspended' },
    h('h2', { id: 'h-suspended' }, 'Passkeys suspended — possible copy'),
    h(
      'p',
      {},
      'Their signature counter went backwards: someone may hold a copy of the key. Review each with its operator, ',
      'then reinstate or revoke it on the operator’s page.',
    ),
    pagedTable<SuspendedCredential>({
      id: 'suspended',
      scope: 'suspended',
      route: 'adminCredentialsSuspended',
      listKey: 'credentials',
      caption: 'Suspended passkeys',
      searchLabel: 'Search suspended passkeys',
      searchPlaceholder: 'operator name, or passkey id',
      defaultSort: 'suspended',
      defaultOrder: 'desc',
      limit: 10,
      columns: [
        {
          label: 'operator',
          cell: (c) => h('a', { href: `#/operators/${encodeURIComponent(c.operatorId)}` }, c.operatorName),
        },
        { label: 'credential', cell: (c) => h('span', { class: 'mono', title: c.id }, `${c.id.slice(0, 12)}…`) },
        {
          label: 'registered on',
          cell: (c, names) =>
            consoleName(
              (() => {
                const known = names.consoles[c.registeredOnConsole];
                return known === undefined ? undefined : { id: c.registeredOnConsole, ...known };
              })(),
              c.registeredOnConsole,
            ),
        },
        { label: 'suspended', sort: 'suspended', cell: (c) => fmtTime(c.suspendedAt ?? 0) },
      ],
      empty: 'No passkey is suspended.',
    }),
  );
}

/** Raised above everything else on the page: a likely cloned passkey waits for an admin's review. */
function suspendedAlert(credentials: Credential[]): HTMLElement | null {
  const suspended = credentials.filter((c) => c.suspendedAt !== null && c.revokedAt === null);
  if (suspended.length === 0) return null;
  return h(
    'div',
    { class: 'error', role: 'alert', id: 'suspended-passkeys' },
    `${suspended.length === 1 ? 'A passkey is' : `${suspended.length} passkeys are`} suspended — possible copy: `,
    'its signature counter went backwards, so someone may hold a copy of the key. Ask the operator whether they still ',
    'hold it; reinstate it if the copy is explained, otherwise revoke it (that ends the sessions resting on it). ',
    ...suspended.map((c) =>
      h('span', { class: 'mono', title: c.id }, `${c.id.slice(0, 12)}… since ${fmtTime(c.suspendedAt ?? 0)} `),
    ),
  );
}

function operatorState(o: Operator): HTMLElement {
  if (o.revokedAt !== null) return pill('revoked', 'bad');
  if (o.failedAttempts >= 100) return pill('locked', 'bad');
  return pill('active', 'good');
}

/** The operator list and the create form. */
export const operatorsView: View = (main, id) => {
  if (id !== undefined) return operatorDetail(main, id);
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading operators…'));
  const message = h('div');
  const name = h('input', { id: 'op-name', required: true, maxlength: 100 });
  const opId = h('input', { id: 'op-id', maxlength: 128, placeholder: 'optional' });
  const roles = h('input', { id: 'op-roles', placeholder: 'teller, supervisor' });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Create an operator' },
    h('label', { for: 'op-name' }, 'Display name', name),
    h('label', { for: 'op-id' }, 'Operator id', opId),
    h('label', { for: 'op-roles' }, 'Roles (comma separated)', roles),
    h('button', { type: 'submit', class: 'primary' }, 'Create operator'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const body = {
          displayName: name.value,
          roles: roles.value
            .split(',')
            .map((r) => r.trim())
            .filter(Boolean),
          ...(opId.value.trim() === '' ? {} : { id: opId.value.trim() }),
        };
        const { operator } = await api<{ operator: Operator }>(...endpoint('adminOperatorCreate'), body);
        announce(`Operator ${operator.displayName} created`);
        location.hash = `#/operators/${encodeURIComponent(operator.id)}`;
      } catch (error) {
        replace(message, errorBox(error));
      }
    })();
  });
  const suspended = h('div');
  const load = async () => {
    try {
      replace(suspended, await suspendedList());
      // Search, filters, sort and pages are the admin API's (cursor paging): tens of thousands of operators.
      replace(
        list,
        pagedTable<Operator>({
          id: 'operators',
          route: 'adminOperators',
          listKey: 'operators',
          caption: 'Operators',
          searchLabel: 'Search operators',
          searchPlaceholder: 'name or id',
          filters: [
            { key: 'role', label: 'Role', placeholder: 'e.g. admin' },
            {
              key: 'state',
              label: 'State',
              options: [
                ['active', 'not revoked'],
                ['locked', 'locked'],
                ['revoked', 'revoked'],
              ],
            },
          ],
          defaultSort: 'name',
          defaultOrder: 'asc',
          columns: [
            {
              label: 'name',
              sort: 'name',
              cell: (o) => h('a', { href: `#/operators/${encodeURIComponent(o.id)}` }, o.displayName),
            },
            { label: 'id', cell: (o) => h('span', { class: 'mono' }, o.id) },
            { label: 'roles', cell: (o) => o.roles.join(', ') || '—' },
            { label: 'state', cell: (o) => operatorState(o) },
            { label: 'created', sort: 'created', cell: (o) => fmtTime(o.createdAt) },
          ],
          empty: 'No operators yet. Create one above, then issue an enrolment code.',
        }),
      );
    } catch (error) {
      replace(list, errorBox(error));
    }
  };
  replace(
    main,
    h('h1', {}, 'Operators'),
    suspended,
    h('section', { class: 'card' }, h('h2', {}, 'New operator'), form, message),
    h('section', { class: 'card' }, h('h2', {}, 'All operators'), list),
    operatorImportCard(() => void load()),
    authenticatorMetadataCard(),
  );
  void load();
};

/** One operator: enrolment codes, passkeys, live sessions, and revocation with its propagation. */
function operatorDetail(main: HTMLElement, id: string): void {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const result = h('div', { id: 'operator-result' });
  const reason = h('input', { id: 'revoke-reason', size: 40, maxlength: 500, placeholder: 'e.g. key reported lost' });

  const needReason = (): string | undefined => {
    const text = reason.value.trim();
    if (text === '') {
      replace(
        result,
        h('div', { class: 'error', role: 'alert' }, 'Type a reason first: it is recorded in the audit trail.'),
      );
      reason.focus();
      return undefined;
    }
    return text;
  };
  const revoke = (what: string, url: string, ask: () => Promise<boolean>) => {
    const text = needReason();
    if (text === undefined) return;
    void (async () => {
      try {
        if (!(await ask())) return;
        showPropagation(result, what, await api('POST', url, { reason: text }));
        await load();
      } catch (error) {
        replace(result, errorBox(error));
      }
    })();
  };

  const reinstate = (credentialId: string) => {
    const text = needReason();
    if (text === undefined) return;
    void (async () => {
      try {
        await api(...endpoint('adminCredentialReinstate', { id: credentialId }), { reason: text });
        announce('Passkey reinstated');
        await load();
      } catch (error) {
        replace(result, errorBox(error));
      }
    })();
  };

  const load = async () => {
    try {
      // Names come with the answers, looked up by the ids this page shows: never the whole estate's lists.
      // The codes table is paged by the admin API; the revocation's confirmation needs only how many are usable.
      const [{ operator, credentials, sessions, names }, { total: usableCodes }] = await Promise.all([
        api<{ operator: Operator; credentials: Credential[]; sessions: Session[]; names?: Names }>(
          ...endpoint('adminOperator', { id }),
        ),
        api<{ total: number }>(...endpoint('adminEnrolmentCodes', { id }, { state: 'usable', limit: 1 })),
      ]);
      const consoles = new Map(
        Object.entries(names?.consoles ?? {}).map(([consoleId, c]) => [consoleId, { id: consoleId, ...c }]),
      );
      const activeCredentials = credentials.filter((c) => c.revokedAt === null);
      const issue = h('button', { type: 'button', id: 'issue-code' }, 'Issue enrolment code');
      issue.addEventListener('click', () => {
        void (async () => {
          try {
            const { code, expiresAt } = await api<{ code: string; expiresAt: number }>(
              ...endpoint('adminEnrolmentCodeIssue', { id }),
              {},
            );
            replace(
              result,
              oneTimeSecret({
                title: `Enrolment code for ${operator.displayName}`,
                value: code,
                expiresAt,
                id: 'new-code',
                instructions: `Give it to ${operator.displayName} in person: they type it (or scan it) on a console under “Register your key”, then touch their security key.`,
              }),
            );
            await load();
          } catch (error) {
            replace(result, errorBox(error));
          }
        })();
      });
      // A revoked operator cannot enrol: an unused code of theirs is not usable, whatever it says.
      const codeState = (c: Code) =>
        c.state === 'usable' && operator.revokedAt !== null ? 'not usable: operator revoked' : c.state;
      const revokeCode = (c: Code) =>
        revokeButton(codeState(c) !== 'usable', `Revoke enrolment code ${c.id}`, () =>
          confirmedRevocation({
            confirmation: {
              title: `Revoke ${operator.displayName}’s enrolment code ${c.id}`,
              consequences: [
                `The code issued ${fmtTime(c.issuedAt)} stops working: nobody can register a key with it.`,
                'No session ends; the operator’s passkeys keep working.',
              ],
              confirm: 'Revoke code',
            },
            revoke: () => api(...endpoint('adminEnrolmentCodeRevoke', { id, codeId: c.id }), {}),
            done: 'Enrolment code revoked',
            message: result,
            then: load,
          }),
        );
      const revokeOperator = h(
        'button',
        { type: 'button', class: 'danger', id: 'revoke-operator', disabled: operator.revokedAt !== null },
        'Revoke operator everywhere',
      );
      revokeOperator.addEventListener('click', () =>
        revoke(`Operator ${operator.displayName}`, endpoint('adminOperatorRevoke', { id })[1], () =>
          confirmAction({
            title: `Revoke operator ${operator.displayName} everywhere`,
            consequences: [
              sessionsEnding(sessions, consoles),
              `${operator.displayName} can no longer sign in anywhere: ${count(activeCredentials.length, 'passkey')} and ${count(operator.revokedAt === null ? usableCodes : 0, 'unused enrolment code')} stop working.`,
              'This cannot be undone; the reason is recorded in the audit trail.',
            ],
            confirm: 'Revoke operator everywhere',
            typeToConfirm: operator.displayName,
          }),
        ),
      );
      const unlock =
        operator.failedAttempts > 0
          ? h('button', { type: 'button' }, `Unlock (${operator.failedAttempts} failed attempts)`)
          : null;
      unlock?.addEventListener(
        'click',
        () =>
          void api(...endpoint('adminOperatorUnlock', { id }), {}).then(load, (e: unknown) =>
            replace(result, errorBox(e)),
          ),
      );
      replace(
        body,
        h('h1', {}, operator.displayName, ' ', operatorState(operator)),
        h(
          'p',
          { class: 'muted' },
          `id ${operator.id} · roles ${operator.roles.join(', ') || '—'} · created ${fmtTime(operator.createdAt)}`,
          operator.revokedAt === null
            ? ''
            : ` · revoked ${fmtTime(operator.revokedAt)}: ${operator.revokedReason ?? ''}`,
        ),
        h(
          'div',
          { class: 'row' },
          h('label', { for: 'revoke-reason' }, 'Reason for a revocation or reinstatement (audit trail)', reason),
          revokeOperator,
          unlock,
        ),
        suspendedAlert(credentials),
        result,
        // One card per row: the passkeys table is wide, and no card may slide under another.
        h(
          'div',
          { class: 'stack' },
          h(
            'section',
            { class: 'card', 'aria-labelledby': 'h-creds' },
            h('h2', { id: 'h-creds' }, 'Passkeys'),
            table(
              'Passkeys',
              [
                'credential',
                'device-bound',
                'authenticator model',
                'attestation',
                'registered',
                'last used',
                'state',
                '',
              ],
              credentials.map((c) => {
                const button = h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    disabled: c.revokedAt !== null,
                    'aria-label': `Revoke passkey ${c.id.slice(0, 10)}`,
                  },
                  'Revoke',
                );
                button.addEventListener('click', () =>
                  revoke(`Passkey “${passkeyName(c)}”`, endpoint('adminCredentialRevoke', { id: c.id })[1], () =>
                    confirmAction({
                      title: `Revoke ${operator.displayName}’s passkey “${passkeyName(c)}”`,
                      consequences: [
                        sessionsEnding(
                          sessions.filter((s) => s.credentialId === c.id),
                          consoles,
                          'No live session rests on this passkey right now.',
                        ),
                        activeCredentials.length > 1
                          ? `${operator.displayName} keeps ${count(activeCredentials.length - 1, 'other passkey')}.`
                          : `It is ${operator.displayName}’s only passkey: they cannot sign in until they enrol another key.`,
                        'This cannot be undone.',
                      ],
                      confirm: 'Revoke passkey',
                    }),
                  ),
                );
                const suspended = c.suspendedAt !== null && c.revokedAt === null;
                const reinstateButton = suspended
                  ? h('button', { type: 'button', 'aria-label': `Reinstate passkey ${c.id.slice(0, 10)}` }, 'Reinstate')
                  : null;
                reinstateButton?.addEventListener('click', () => reinstate(c.id));
                return [
                  h('span', { class: 'mono', title: c.id }, `${c.id.slice(0, 12)}…`),
                  c.deviceBound ? pill('device-bound', 'good') : pill('syncable', 'warn'),
                  c.authenticator !== null
                    ? modelCell(c.authenticator, c.aaguid)
                    : h(
                        'span',
                        { class: 'mono' },
                        c.aaguid === ZERO_AAGUID ? 'unknown (AAGUID all zeros)' : `AAGUID ${c.aaguid}`,
                      ),
                  `${c.attestationFmt} (${c.attestationTrust})`,
                  `${fmtTime(c.createdAt)} on ${consoleName(consoles.get(c.registeredOnConsole), c.registeredOnConsole)}`,
                  fmtAgo(c.lastUsedAt),
                  credentialState(c),
                  h('span', { class: 'row' }, reinstateButton, button),
                ];
              }),
              'No passkey registered yet: issue an enrolment code.',
            ),
          ),
          h(
            'section',
            { class: 'card', 'aria-labelledby': 'h-codes' },
            h('h2', { id: 'h-codes' }, 'Enrolment codes'),
            h('div', { class: 'row' }, issue),
            // Searched (a code id's start), filtered by state, sorted and paged by the admin API.
            pagedTable<Code>({
              id: 'codes',
              route: 'adminEnrolmentCodes',
              params: { id },
              listKey: 'codes',
              caption: 'Enrolment codes',
              searchLabel: 'Search codes',
              searchPlaceholder: 'start of a code id',
              filters: [
                {
                  key: 'state',
                  label: 'State',
                  options: [
                    ['usable', 'usable'],
                    ['used', 'used'],
                    ['expired', 'expired'],
                    ['revoked', 'revoked'],
                  ],
                },
              ],
              defaultSort: 'issued',
              defaultOrder: 'desc',
              limit: 10,
              columns: [
                { label: 'code id', cell: (c) => h('span', { class: 'mono' }, c.id) },
                { label: 'issued', sort: 'issued', cell: (c) => fmtTime(c.issuedAt) },
                {
                  label: 'by',
                  cell: (c, people) => actorName(c.issuedBy, new Map(Object.entries(people.operators))),
                },
                { label: 'expires', sort: 'expires', cell: (c) => fmtTime(c.expiresAt) },
                { label: 'state', cell: (c) => pill(codeState(c), codeState(c) === 'usable' ? 'good' : '') },
                { label: '', cell: (c) => revokeCode(c) },
              ],
              empty: 'No enrolment code was issued for this operator.',
            }),
          ),
          h(
            'section',
            { class: 'card', 'aria-labelledby': 'h-sessions' },
            h('h2', { id: 'h-sessions' }, 'Live sessions'),
            h(
              'div',
              { id: 'operator-sessions' },
              table(
                'Live sessions',
                ['session', 'console', 'level', 'state', 'since'],
                sessions.map((s) => [
                  h('span', { class: 'mono' }, s.id),
                  h(
                    'a',
                    { href: `#/consoles/${encodeURIComponent(s.consoleId)}` },
                    consoleName(consoles.get(s.consoleId), s.consoleId),
                  ),
                  s.level,
                  pill(s.state, 'good'),
                  fmtTime(s.startedAt),
                ]),
                'No live session: this operator is signed in nowhere.',
              ),
            ),
          ),
        ),
      );
    } catch (error) {
      replace(body, errorBox(error));
    }
  };
  replace(main, h('p', {}, h('a', { href: '#/operators' }, '← All operators')), body);
  void load();
}
