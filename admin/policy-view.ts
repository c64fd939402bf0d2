import type { FieldIssue } from '../shared/errors.js';
import type { PolicyAdoption } from '../shared/http-api.js';
import { ASSURANCE_LEVELS } from '../shared/levels.js';
import { validatePolicy } from '../shared/policy.js';
import { ApiError, api, endpoint } from './api.js';
import { confirmAction, count } from './confirm.js';
import { announce, errorBox, fmtTime, h, replace, table } from './dom.js';
import { actorName, consoleName } from './operators-view.js';
import { CHANNEL_FIELDS, duration, settingChanges, whatChangesForWhom } from './policy-diff.js';
import { pagedTable } from './paged-table.js';
import type { View } from './view.js';

interface PolicyVersion {
  version: number;
  policy: { channels: Record<string, unknown>; actions: Record<string, unknown> };
  publishedAt: number;
  publishedBy: string;
}

/** Finds the line of the field a validation issue points at (`channels.branch-kiosk.idleLockSeconds`). */
export function locateField(text: string, path: string): { start: number; end: number } | undefined {
  if (path === '(root)') return undefined;
  let from = 0;
  let found: { start: number; end: number } | undefined;
  for (const key of path.split('.')) {
    const at = text.indexOf(`"${key}"`, from);
    if (at < 0) break;
    const lineEnd = text.indexOf('\n', at);
    found = { start: text.lastIndexOf('\n', at) + 1, end: lineEnd < 0 ? text.length : lineEnd };
    from = at + key.length + 2;
  }
  return found;
}

type Draft = Record<string, unknown>;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Sets `draft[a][b][c] = value` for the path `[a, b, c]` (undefined deletes the key). */
function setAt(draft: Draft, path: string[], value: unknown): void {
  let node: Record<string, unknown> = draft;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (!isObject(next)) return;
    node = next;
  }
  const last = path.at(-1);
  if (last === undefined) return;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** The form control of a field path, when the form shows that field. */
function controlFor(form: HTMLElement, path: string): HTMLElement | null {
  const exact = form.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`);
  if (exact !== null) return exact;
  // `actions.x.channels[0]` or `channels.y.allowedLevels` → the group's first control.
  const base = path.replace(/\[\d+\]$/, '');
  return form.querySelector<HTMLElement>(`[data-path^="${CSS.escape(base)}"]`);
}

/**
 * View, edit (a form per channel and per action, the JSON for experts, both the same draft),
 * validate as the admin types, diff against the published version, preview a decision, publish
 * after a confirmation that says what changes for whom, adoption and roll back.
 */
export const policyView: View = (main) => {
  const current = h('div', {}, h('p', { class: 'muted' }, 'Loading policy…'));
  const versions = h('div');
  const adoptionBox = h('div', { id: 'policy-adoption' });
  const editor = h('textarea', {
    id: 'policy-editor',
    rows: 24,
    spellcheck: 'false',
    'aria-describedby': 'policy-issues',
  });
  const form = h('div', { id: 'policy-form' });
  const issuesBox = h('div', { id: 'policy-issues', 'aria-live': 'polite' });
  const diffBox = h('div', { id: 'policy-diff' });
  const result = h('div', { id: 'policy-result', 'aria-live': 'polite' });
  let base = 0;
  let published: unknown = {};
  /** The draft as an object, or undefined while the JSON view holds text that does not parse. */
  let draft: Draft | undefined;
  /** Consoles not revoked per channel, counted by the backend (never read console by console). */
  let onChannel: Record<string, number> = {};
  let people = new Map<string, string>();

  const consolesOn = (channel: string) => onChannel[channel] ?? 0;

  const showIssues = (issues: FieldIssue[], heading: string) => {
    editor.setAttribute('aria-invalid', issues.length > 0 ? 'true' : 'false');
    for (const old of form.querySelectorAll('[aria-invalid="true"]')) old.removeAttribute('aria-invalid');
    for (const old of form.querySelectorAll('.field-error')) old.remove();
    for (const issue of issues) {
      const control = controlFor(form, issue.path);
      if (control === null) continue;
      control.setAttribute('aria-invalid', 'true');
      const label = control.closest('label') ?? control;
      label.append(h('span', { class: 'field-error', role: 'note' }, issue.message));
    }
    if (issues.length === 0) {
      replace(issuesBox, h('p', { class: 'ok', role: 'status' }, heading));
      return;
    }
    replace(
      issuesBox,
      h(
        'div',
        { class: 'error', role: 'alert' },
        h('p', {}, heading),
        h(
          'ul',
          { class: 'issues' },
          issues.map((issue) => {
            const jump = h('button', { type: 'button', class: 'mono', 'data-path': issue.path }, issue.path);
            jump.addEventListener('click', () => {
              const control = controlFor(form, issue.path);
              if (control !== null && !jsonView.open) {
                control.focus();
                return;
              }
              jsonView.open = true;
              const at = locateField(editor.value, issue.path);
              editor.focus();
              if (at !== undefined) editor.setSelectionRange(at.start, at.end);
            });
            return h('li', {}, jump, `: ${issue.message}`);
          }),
        ),
      ),
    );
  };

  /** Checks the draft here (the same schema the backend checks), shows the diff, and gates Publish. */
  const check = (): boolean => {
    if (draft === undefined) {
      publishButton.disabled = true;
      replace(diffBox);
      return false;
    }
    const validation = validatePolicy(draft);
    const issues = validation.ok ? [] : validation.issues;
    const changes = settingChanges(published, draft);
    showIssues(
      issues,
      issues.length > 0
        ? `The draft has ${issues.length} problem(s):`
        : changes.length === 0
          ? 'The draft is valid. It is the same as the published version.'
          : 'The draft is valid.',
    );
    replace(
      diffBox,
      table(
        `Changes against version ${base}`,
        ['setting', `version ${base}`, 'draft'],
        changes.map((c) => [
          h('span', { class: 'mono' }, c.path),
          h('span', { class: 'mono was' }, c.before === undefined ? '(not set)' : JSON.stringify(c.before)),
          h('span', { class: 'mono now' }, c.after === undefined ? '(removed)' : JSON.stringify(c.after)),
        ]),
        `No change against version ${base}.`,
      ),
    );
    publishButton.disabled = issues.length > 0 || changes.length === 0;
    publishButton.title =
      issues.length > 0 ? 'Fix the problems first' : changes.length === 0 ? 'Nothing to publish' : '';
    return issues.length === 0;
  };

  /** The form changed a field: the JSON view follows, then the checks. */
  const edited = (path: string[], value: unknown) => {
    if (draft === undefined) return;
    setAt(draft, path, value);
    editor.value = JSON.stringify(draft, null, 2);
    check();
  };

  const numberField = (path: string[], label: string) => {
    const value = path.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), draft);
    const input = h('input', {
      type: 'number',
      id: `pf-${path.join('-')}`,
      'data-path': path.join('.'),
      value: typeof value === 'number' ? value : '',
      placeholder: 'default',
    });
    input.addEventListener('input', () =>
      edited(
        path,
        input.value === '' ? undefined : Number.isNaN(input.valueAsNumber) ? input.value : input.valueAsNumber,
      ),
    );
    return h('label', { for: input.id }, label, input);
  };

  const levelSelect = (path: string[], label: string, value: unknown) => {
    const select = h(
      'select',
      { id: `pf-${path.join('-')}`, 'data-path': path.join('.') },
      ASSURANCE_LEVELS.map((l) => h('option', { value: l, selected: l === value }, l)),
    );
    select.addEventListener('change', () => edited(path, select.value));
    return h('label', { for: select.id }, label, select);
  };

  const checkboxes = (path: string[], legend: string, options: readonly string[], chosen: unknown, hint: string) => {
    const picked = new Set(Array.isArray(chosen) ? chosen.map(String) : []);
    const boxes = options.map((option) => {
      const box = h('input', {
        type: 'checkbox',
        id: `pf-${path.join('-')}-${option}`,
        'data-path': path.join('.'),
        value: option,
        checked: picked.has(option),
      });
      box.addEventListener('change', () => {
        const all = [...group.querySelectorAll<HTMLInputElement>('input[type=checkbox]')];
        const values = all.filter((b) => b.checked).map((b) => b.value);
        edited(path, values.length === 0 && path[0] === 'actions' ? undefined : values);
      });
      return h('label', { for: box.id, class: 'check' }, box, option);
    });
    const group = h(
      'fieldset',
      { class: 'checks' },
      h('legend', {}, legend),
      boxes,
      h('span', { class: 'muted' }, hint),
    );
    return group;
  };

  const renderForm = () => {
    if (draft === undefined || !isObject(draft.channels) || !isObject(draft.actions)) {
      replace(
        form,
        h('p', { class: 'muted' }, 'The form shows again once the JSON view holds a policy with channels and actions.'),
      );
      return;
    }
    const channelNames = Object.keys(draft.channels);
    const channelCards = Object.entries(draft.channels).map(([name, channel]) => {
      const c = isObject(channel) ? channel : {};
      const stale = h(
        'select',
        { id: `pf-channels-${name}-staleNode`, 'data-path': `channels.${name}.staleNode` },
        h('option', { value: '', selected: c.staleNode === undefined }, 'default (strict)'),
        h('option', { value: 'strict', selected: c.staleNode === 'strict' }, 'strict: refuse sign-ins'),
        h('option', { value: 'best-effort', selected: c.staleNode === 'best-effort' }, 'best-effort: serve, flagged'),
      );
      stale.addEventListener('change', () => edited(['channels', name, 'staleNode'], stale.value || undefined));
      return h(
        'fieldset',
        { class: 'policy-part', 'aria-label': `Channel ${name}` },
        h('legend', {}, `Channel ${name} `, h('span', { class: 'muted' }, `(${count(consolesOn(name), 'console')})`)),
        h(
          'div',
          { class: 'fields' },
          Object.entries(CHANNEL_FIELDS).map(([field, { label }]) => numberField(['channels', name, field], label)),
          h('label', { for: stale.id }, 'When a backend node may be stale', stale),
        ),
        checkboxes(
          ['channels', name, 'allowedLevels'],
          'Levels that may sign in',
          ASSURANCE_LEVELS,
          c.allowedLevels,
          '',
        ),
      );
    });
    const actionCards = Object.entries(draft.actions).map(([name, action]) => {
      const a = isObject(action) ? action : {};
      const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Remove action ${name}` }, 'Remove');
      remove.addEventListener('click', () => {
        if (draft === undefined || !isObject(draft.actions)) return;
        delete draft.actions[name];
        editor.value = JSON.stringify(draft, null, 2);
        renderForm();
        check();
      });
      return h(
        'fieldset',
        { class: 'policy-part', 'aria-label': `Action ${name}` },
        h('legend', {}, `Action ${name}`),
        h(
          'div',
          { class: 'fields' },
          levelSelect(['actions', name, 'level'], 'Step-up level', a.level),
          numberField(['actions', name, 'maxAgeSeconds'], 'Authenticated within (s)'),
          remove,
        ),
        checkboxes(
          ['actions', name, 'channels'],
          'Only on these channels',
          channelNames,
          a.channels,
          'none ticked: every channel',
        ),
      );
    });
    const newAction = h('input', { id: 'pf-new-action', placeholder: 'e.g. cash.withdraw', maxlength: 100 });
    const add = h('button', { type: 'button', id: 'pf-add-action' }, 'Add action');
    add.addEventListener('click', () => {
      const name = newAction.value.trim();
      if (draft === undefined || !isObject(draft.actions) || name === '' || Object.hasOwn(draft.actions, name)) return;
      draft.actions[name] = { level: 'verified', maxAgeSeconds: 300 };
      editor.value = JSON.stringify(draft, null, 2);
      renderForm();
      check();
    });
    replace(
      form,
      h('h3', {}, 'Channels'),
      h('div', { class: 'policy-parts' }, channelCards),
      h('h3', {}, 'Actions'),
      h('div', { class: 'policy-parts' }, actionCards),
      h('div', { class: 'row' }, h('label', { for: newAction.id }, 'New action name', newAction), add),
      h(
        'p',
        { class: 'muted' },
        'Credential rules and agent settings: in the JSON view below. ',
        `Durations in seconds (300 = ${duration(300)}).`,
      ),
    );
  };

  /** The JSON view changed: the form follows when the text parses. */
  editor.addEventListener('input', () => {
    try {
      const parsed: unknown = JSON.parse(editor.value);
      draft = isObject(parsed) ? parsed : undefined;
    } catch (error) {
      draft = undefined;
      showIssues(
        [{ path: '(root)', message: `Not valid JSON: ${error instanceof Error ? error.message : String(error)}` }],
        'The draft cannot be read.',
      );
    }
    renderForm();
    check();
  });
  const jsonView = h(
    'details',
    { id: 'policy-json' },
    h('summary', {}, 'JSON view (for experts): the whole document, the same draft as the form'),
    h('label', { for: 'policy-editor', class: 'sr-only' }, 'Policy document (JSON)'),
    editor,
  );

  const validate = async (): Promise<boolean> => {
    if (draft === undefined) return false;
    const { valid, issues } = await api<{ valid: boolean; issues: FieldIssue[] }>(
      ...endpoint('adminPolicyValidate'),
      draft,
    );
    showIssues(issues, valid ? 'The draft is valid.' : `The draft has ${issues.length} problem(s):`);
    return valid;
  };

  const validateButton = h('button', { type: 'button', id: 'policy-validate' }, 'Validate');
  validateButton.addEventListener(
    'click',
    () => void validate().catch((e: unknown) => replace(issuesBox, errorBox(e))),
  );
  const publishButton = h(
    'button',
    { type: 'button', class: 'primary', id: 'policy-publish', disabled: true },
    'Publish',
  );
  publishButton.addEventListener('click', () => {
    void (async () => {
      try {
        if (!check() || !(await validate()) || draft === undefined) return;
        const lines = whatChangesForWhom(published, draft, consolesOn);
        const ok = await confirmAction({
          title: `Publish policy version ${base + 1}`,
          consequences: [
            ...lines,
            `Every connected console gets it at once; the others when they reconnect. Version ${base} stays in the history for a roll back.`,
          ],
          confirm: `Publish version ${base + 1}`,
          tone: 'primary',
        });
        if (!ok) return;
        const version = await api<PolicyVersion>(...endpoint('adminPolicyPublish'), {
          baseVersion: base,
          policy: draft,
        });
        replace(
          result,
          h(
            'div',
            { class: 'ok', role: 'status' },
            `Published version ${version.version}; it is being pushed to every connected console.`,
          ),
        );
        announce(`Policy version ${version.version} published`);
        await load(true);
      } catch (error) {
        if (error instanceof ApiError && error.issues.length > 0) showIssues(error.issues, `${error.code}:`);
        replace(result, errorBox(error));
      }
    })();
  });
  const reset = h('button', { type: 'button', id: 'policy-reset' }, 'Discard draft');
  reset.addEventListener('click', () => void load(true));

  // Preview
  const channel = h('select', { id: 'pv-channel' });
  const level = h(
    'select',
    { id: 'pv-level' },
    h('option', { value: 'verified' }, 'verified (PIN or biometric)'),
    h('option', { value: 'presence' }, 'presence (a touch)'),
    h('option', { value: 'hardware' }, 'hardware (certified key)'),
    h('option', { value: '' }, 'nobody signed in'),
  );
  const action = h('input', { id: 'pv-action', value: 'payment.approve', maxlength: 100 });
  const age = h('input', { id: 'pv-age', type: 'number', min: 0, value: 60 });
  const previewOut = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  const previewForm = h(
    'form',
    { class: 'row', 'aria-label': 'Preview a decision' },
    h('label', { for: 'pv-channel' }, 'Channel', channel),
    h('label', { for: 'pv-level' }, 'Signed in at level', level),
    h('label', { for: 'pv-action' }, 'Action (or session.sign-in)', action),
    h('label', { for: 'pv-age' }, 'Authenticated seconds ago', age),
    h('button', { type: 'submit' }, 'Preview decision'),
  );
  previewForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (draft === undefined) return;
    void api<{ decision: { outcome: string; level?: string; maxAgeSeconds?: number; reasons: string[] } }>(
      ...endpoint('adminPolicyPreview'),
      {
        policy: draft,
        action: action.value,
        context: {
          channel: channel.value,
          level: level.value === '' ? null : level.value,
          authAgeSeconds: level.value === '' ? null : Number(age.value),
        },
      },
    ).then(
      ({ decision }) =>
        replace(
          previewOut,
          h(
            'p',
            { class: decision.outcome === 'deny' ? 'error' : 'ok' },
            `Draft decides: ${decision.outcome}`,
            decision.level === undefined ? '' : ` to ${decision.level} within ${decision.maxAgeSeconds ?? 0} s`,
            ` (${decision.reasons.join(', ')})`,
          ),
        ),
      (error: unknown) => {
        if (error instanceof ApiError && error.issues.length > 0) showIssues(error.issues, 'The draft is invalid:');
        replace(previewOut, errorBox(error));
      },
    );
  });

  const load = async (resetEditor: boolean) => {
    try {
      // Who published each version and who each version reaches come with the versions (names looked up
      // by id, consoles counted by the database): the page never reads the estate's lists.
      // The newest version (its publisher's name) and the reach; the history is the paged table below.
      const [now, { names, adoption }] = await Promise.all([
        api<PolicyVersion>(...endpoint('adminPolicy')),
        api<{ versions: PolicyVersion[]; names?: { operators: Record<string, string> }; adoption?: PolicyAdoption }>(
          ...endpoint('adminPolicyVersions', {}, { limit: 1 }),
        ),
      ]);
      onChannel = adoption?.byChannel ?? {};
      people = new Map(Object.entries(names?.operators ?? {}));
      base = now.version;
      published = now.policy;
      if (resetEditor || draft === undefined) {
        draft = structuredClone(now.policy) as Draft;
        editor.value = JSON.stringify(draft, null, 2);
        renderForm();
      }
      check();
      replace(
        channel,
        Object.keys(now.policy.channels).map((c) => h('option', { value: c }, c)),
      );
      replace(
        current,
        h(
          'p',
          { id: 'policy-current' },
          `Version ${now.version}, published ${fmtTime(now.publishedAt)} by ${actorName(now.publishedBy, people)}. Channels: ${Object.keys(now.policy.channels).join(', ')}. Actions: ${Object.keys(now.policy.actions).join(', ') || 'none'}.`,
        ),
      );
      const rollBack = (v: PolicyVersion) => {
        const back = h(
          'button',
          {
            type: 'button',
            disabled: v.version === now.version,
            'aria-label': `Roll back to version ${v.version}`,
          },
          v.version === now.version ? 'current' : 'Roll back to this',
        );
        back.addEventListener('click', () => {
          void (async () => {
            try {
              const lines = whatChangesForWhom(now.policy, v.policy, consolesOn);
              const ok = await confirmAction({
                title: `Roll back to version ${v.version}`,
                consequences: [
                  `Version ${v.version}'s document is published again as version ${now.version + 1}.`,
                  ...lines,
                ],
                confirm: `Roll back to version ${v.version}`,
              });
              if (!ok) return;
              const p = await api<PolicyVersion>(...endpoint('adminPolicyRollback'), {
                toVersion: v.version,
                baseVersion: base,
              });
              replace(
                result,
                h(
                  'div',
                  { class: 'ok', role: 'status' },
                  `Rolled back: version ${v.version}'s document is now published as version ${p.version}.`,
                ),
              );
              await load(true);
            } catch (e) {
              replace(result, errorBox(e));
            }
          })();
        });
        return back;
      };
      // Searched (a version number, or who published it), sorted and paged by the admin API, newest first.
      replace(
        versions,
        pagedTable<PolicyVersion>({
          id: 'versions',
          route: 'adminPolicyVersions',
          listKey: 'versions',
          caption: 'Versions',
          searchLabel: 'Search versions',
          searchPlaceholder: 'version number, or who published it',
          defaultSort: 'version',
          defaultOrder: 'desc',
          limit: 10,
          columns: [
            { label: 'version', sort: 'version', cell: (v) => `v${v.version}` },
            { label: 'when', sort: 'published', cell: (v) => fmtTime(v.publishedAt) },
            {
              label: 'by',
              cell: (v, page) => actorName(v.publishedBy, new Map(Object.entries(page.operators))),
            },
            { label: '', cell: rollBack },
          ],
          empty: 'No versions.',
        }),
      );
      replace(
        adoptionBox,
        table(
          'Consoles by policy version',
          ['version', 'consoles', 'which'],
          (adoption?.byVersion ?? []).map((v) => [
            v.version === 0 ? 'none yet' : `v${v.version}${v.version === now.version ? ' (current)' : ''}`,
            v.consoles.toLocaleString('en-GB'),
            h(
              'span',
              {},
              v.sample.map((c) => consoleName({ id: c.id, name: c.name, site: c.site }, c.id)).join(', '),
              v.consoles > v.sample.length
                ? [
                    ` and ${(v.consoles - v.sample.length).toLocaleString('en-GB')} more: `,
                    h(
                      'a',
                      { href: `#/consoles?state=active&policyVersion=${v.version}` },
                      `all ${v.consoles.toLocaleString('en-GB')}`,
                    ),
                  ]
                : '',
            ),
          ]),
          'No console is enrolled, so no console runs any version yet.',
        ),
        adoption?.versionsAtLeast === true
          ? h('p', { class: 'muted' }, 'Older versions are run too; the 20 newest are shown.')
          : null,
      );
    } catch (error) {
      replace(current, errorBox(error));
    }
  };

  replace(
    main,
    h('h1', {}, 'Policy'),
    h('section', { class: 'card' }, h('h2', {}, 'Current'), current),
    h(
      'div',
      { class: 'grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Versions'), versions),
      h('section', { class: 'card' }, h('h2', {}, 'Which consoles run which version'), adoptionBox),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'h-edit' },
      h('h2', { id: 'h-edit' }, 'Edit a new version'),
      form,
      jsonView,
      issuesBox,
      h('h3', {}, 'What the draft changes'),
      diffBox,
      h('h3', {}, 'Preview decisions with this draft'),
      previewForm,
      previewOut,
      h('div', { class: 'row' }, validateButton, publishButton, reset),
      result,
    ),
  );
  void load(true);
};
