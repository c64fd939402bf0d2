import type { FieldIssue } from '../shared/errors.js';
import { ApiError, api, endpoint } from './api.js';
import { announce, errorBox, fmtTime, h, replace, table } from './dom.js';
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

/** View, edit (validated field by field), preview, publish, adoption and roll back. */
export const policyView: View = (main) => {
  const current = h('div', {}, h('p', { class: 'muted' }, 'Loading policy…'));
  const versions = h('div');
  const adoption = h('div');
  const editor = h('textarea', {
    id: 'policy-editor',
    rows: 24,
    spellcheck: 'false',
    'aria-describedby': 'policy-issues',
  });
  const issuesBox = h('div', { id: 'policy-issues', 'aria-live': 'polite' });
  const result = h('div', { id: 'policy-result', 'aria-live': 'polite' });
  let base = 0;

  const showIssues = (issues: FieldIssue[], heading: string) => {
    editor.setAttribute('aria-invalid', issues.length > 0 ? 'true' : 'false');
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

  const draft = (): unknown => {
    try {
      return JSON.parse(editor.value);
    } catch (error) {
      showIssues(
        [{ path: '(root)', message: `Not valid JSON: ${error instanceof Error ? error.message : String(error)}` }],
        'The draft cannot be read.',
      );
      return undefined;
    }
  };

  const validate = async (): Promise<boolean> => {
    const policy = draft();
    if (policy === undefined) return false;
    const { valid, issues } = await api<{ valid: boolean; issues: FieldIssue[] }>(
      ...endpoint('adminPolicyValidate'),
      policy,
    );
    showIssues(issues, valid ? 'The draft is valid.' : `The draft has ${issues.length} problem(s):`);
    return valid;
  };

  const validateButton = h('button', { type: 'button', id: 'policy-validate' }, 'Validate');
  validateButton.addEventListener(
    'click',
    () => void validate().catch((e: unknown) => replace(issuesBox, errorBox(e))),
  );
  const publishButton = h('button', { type: 'button', class: 'primary', id: 'policy-publish' }, 'Publish');
  publishButton.addEventListener('click', () => {
    void (async () => {
      try {
        if (!(await validate())) return;
        const published = await api<PolicyVersion>(...endpoint('adminPolicyPublish'), {
          baseVersion: base,
          policy: draft(),
        });
        replace(
          result,
          h(
            'div',
            { class: 'ok', role: 'status' },
            `Published version ${published.version}; it is being pushed to every connected console.`,
          ),
        );
        announce(`Policy version ${published.version} published`);
        await load(false);
      } catch (error) {
        if (error instanceof ApiError && error.issues.length > 0) showIssues(error.issues, `${error.code}:`);
        replace(result, errorBox(error));
      }
    })();
  });

  // Preview
  const channel = h('select', { id: 'pv-channel' });
  const level = h(
    'select',
    { id: 'pv-level' },
    h('option', { value: 'verified' }, 'verified (AAL2)'),
    h('option', { value: 'presence' }, 'presence (AAL1)'),
    h('option', { value: 'hardware' }, 'hardware (AAL3)'),
    h('option', { value: '' }, 'nobody signed in'),
  );
  const action = h('input', { id: 'pv-action', value: 'payment.approve', maxlength: 100 });
  const age = h('input', { id: 'pv-age', type: 'number', min: 0, value: 60 });
  const previewOut = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  const previewForm = h(
    'form',
    { class: 'row', 'aria-label': 'Preview a decision' },
    h('label', { for: 'pv-channel' }, 'Channel', channel),
    h('label', { for: 'pv-level' }, 'Level', level),
    h('label', { for: 'pv-action' }, 'Action (or session.sign-in)', action),
    h('label', { for: 'pv-age' }, 'Authenticated seconds ago', age),
    h('button', { type: 'submit' }, 'Preview decision'),
  );
  previewForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const policy = draft();
    if (policy === undefined) return;
    void api<{ decision: { outcome: string; level?: string; maxAgeSeconds?: number; reasons: string[] } }>(
      ...endpoint('adminPolicyPreview'),
      {
        policy,
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
      const [now, { versions: all }, { consoles }] = await Promise.all([
        api<PolicyVersion>(...endpoint('adminPolicy')),
        api<{ versions: PolicyVersion[] }>(...endpoint('adminPolicyVersions')),
        api<{ consoles: { id: string; name: string | null; policyVersion: number; revokedAt: number | null }[] }>(
          ...endpoint('adminConsoles'),
        ),
      ]);
      base = now.version;
      if (resetEditor) editor.value = JSON.stringify(now.policy, null, 2);
      replace(
        channel,
        Object.keys(now.policy.channels).map((c) => h('option', { value: c }, c)),
      );
      replace(
        current,
        h(
          'p',
          { id: 'policy-current' },
          `Version ${now.version}, published ${fmtTime(now.publishedAt)} by ${now.publishedBy}. Channels: ${Object.keys(now.policy.channels).join(', ')}. Actions: ${Object.keys(now.policy.actions).join(', ') || 'none'}.`,
        ),
      );
      replace(
        versions,
        table(
          'Versions',
          ['version', 'published', 'by', ''],
          [...all].reverse().map((v) => {
            const back = h(
              'button',
              {
                type: 'button',
                disabled: v.version === now.version,
                'aria-label': `Roll back to version ${v.version}`,
              },
              v.version === now.version ? 'current' : 'Roll back to this',
            );
            back.addEventListener(
              'click',
              () =>
                void api<PolicyVersion>(...endpoint('adminPolicyRollback'), {
                  toVersion: v.version,
                  baseVersion: base,
                }).then(
                  (p) => {
                    replace(
                      result,
                      h(
                        'div',
                        { class: 'ok', role: 'status' },
                        `Rolled back: version ${v.version}'s document is now published as version ${p.version}.`,
                      ),
                    );
                    return load(true);
                  },
                  (e: unknown) => replace(result, errorBox(e)),
                ),
            );
            return [`v${v.version}`, fmtTime(v.publishedAt), v.publishedBy, back];
          }),
          'No versions.',
        ),
      );
      const live = consoles.filter((c) => c.revokedAt === null);
      const byVersion = new Map<number, string[]>();
      for (const c of live) byVersion.set(c.policyVersion, [...(byVersion.get(c.policyVersion) ?? []), c.name ?? c.id]);
      replace(
        adoption,
        table(
          'Consoles by policy version',
          ['version', 'consoles', 'which'],
          [...byVersion.entries()]
            .sort((a, b) => b[0] - a[0])
            .map(([v, names]) => [
              v === 0 ? 'none yet' : `v${v}${v === now.version ? ' (current)' : ''}`,
              String(names.length),
              names.join(', '),
            ]),
          'No console is enrolled, so no console runs any version yet.',
        ),
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
      h('section', { class: 'card' }, h('h2', {}, 'Which consoles run which version'), adoption),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'h-edit' },
      h('h2', { id: 'h-edit' }, 'Edit a new version'),
      h('label', { for: 'policy-editor', class: 'sr-only' }, 'Policy document (JSON)'),
      editor,
      issuesBox,
      h('h3', {}, 'Preview decisions with this draft'),
      previewForm,
      previewOut,
      h('div', { class: 'row' }, validateButton, publishButton),
      result,
    ),
  );
  void load(true);
};
