import type { AgentStatusView, CeremonyRequest, IpcResponse, IpcResult } from '../shared/ipc.js';
import type { BatonApi } from './baton-api.js';
import { byId, el, setText, show } from './dom.js';
import { explainCode } from './plain-words.js';
import { breakGlassMark } from './views.js';

/**
 * "Forgot your key?" on the lock screen (issue 14 item 7): an operator without their key types their
 * operator ID (the screen lists nobody: a shared kiosk shows no one's name to whoever stands there),
 * then either a supervisor touches their own key on this console, or they enter the one-time code IT
 * issued. The session that comes to the front is capped (fewer rights, a short time) and marked on
 * the workspace. Kept apart from operator-ui.ts: nothing here runs on the status → render path but
 * one comparison of the session in front.
 */

/** What the lock screen does while the panel is open: tap-and-go stops waiting for a key, and starts again after. */
export interface BreakGlassHooks {
  hold(on: boolean): Promise<void>;
}

type Started = IpcResponse<'break-glass:supervisor'>;

// The break-glass refusals (BREAK_GLASS_*) have their plain words in plain-words.ts; these say it for this panel.
const WORDS: Record<string, string> = {
  OPERATOR_UNKNOWN: 'There is no operator with that ID. Check it with your supervisor.',
  OPERATOR_REVOKED: 'That access has been withdrawn (revoked). Ask IT.',
  OPERATOR_LOCKED: 'That supervisor is locked out after too many failed attempts. Ask IT.',
  CHALLENGE_EXPIRED: 'The supervisor did not touch their key in time. Try again.',
};

/** The plain sentence for a break-glass refusal. */
export function explainBreakGlass(code: string): string {
  return WORDS[code] ?? explainCode(code);
}

/** The key prompt's words while a supervisor's tap is awaited (the operator UI's overlay). */
export function breakGlassCeremonyText(
  request: CeremonyRequest | undefined,
): { title: string; text: string; why: string[] } | undefined {
  if (request?.purpose !== 'break-glass') return undefined;
  return {
    title: 'Supervisor: touch your key to approve',
    text: `A supervisor touches their own security key and gives its PIN or fingerprint, to let operator ${request.operatorName ?? ''} in without their key.`,
    why: ['The access is short and limited, and IT reviews it.', 'Nobody can approve their own access.'],
  };
}

export class BreakGlassPanel {
  private busy = false;

  constructor(
    private readonly api: BatonApi,
    private readonly hooks: BreakGlassHooks,
  ) {}

  /** Builds the button and the panel on the lock screen and the mark on the workspace. */
  mount(): void {
    const lock = byId('screen-lock');
    const open = el(
      'button',
      { id: 'forgot-key', type: 'button', class: 'secondary', 'data-testid': 'forgot-key', 'aria-expanded': 'false' },
      'Forgot your key?',
    );
    const panel = el(
      'section',
      { id: 'break-glass', class: 'stack', 'aria-labelledby': 'break-glass-title', 'data-testid': 'break-glass' },
      el('h2', { id: 'break-glass-title', tabindex: '-1' }, 'Temporary access without your key'),
      el(
        'p',
        { class: 'hint' },
        'Type your operator ID. A supervisor then touches their own key here, or enter the one-time code IT gave you. ' +
          'The access is short, limited, and reviewed by IT.',
      ),
      el(
        'form',
        { id: 'break-glass-form', class: 'stack', novalidate: '' },
        el('label', { for: 'break-glass-operator' }, 'Your operator ID'),
        el('input', {
          id: 'break-glass-operator',
          name: 'operatorId',
          autocomplete: 'off',
          spellcheck: 'false',
          required: '',
          maxlength: '128',
        }),
        el('button', { type: 'submit', class: 'primary', id: 'break-glass-supervisor' }, 'Ask a supervisor to approve'),
        el('label', { for: 'break-glass-code' }, 'One-time code from IT (if you have one)'),
        el('input', {
          id: 'break-glass-code',
          name: 'code',
          autocomplete: 'off',
          spellcheck: 'false',
          maxlength: '40',
        }),
        el('button', { type: 'button', class: 'secondary', id: 'break-glass-redeem' }, 'Use the code from IT'),
        el('button', { type: 'button', class: 'secondary', id: 'break-glass-close' }, 'Back'),
      ),
      el('p', { id: 'break-glass-result', class: 'result', role: 'alert', 'data-testid': 'break-glass-result' }),
    );
    panel.hidden = true;
    lock.append(open, panel);
    const mark = el('p', { id: 'break-glass-mark', class: 'hint', role: 'status', 'data-testid': 'break-glass-mark' });
    mark.hidden = true;
    byId('screen-workspace').querySelector('.who')?.append(mark);

    open.addEventListener('click', () => void this.open(panel.hidden));
    byId('break-glass-close').addEventListener('click', () => void this.open(false));
    byId('break-glass-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.run((operatorId) => this.api.breakGlassBySupervisor(operatorId));
    });
    byId('break-glass-redeem').addEventListener('click', () => {
      const code = byId<HTMLInputElement>('break-glass-code').value.trim();
      void this.run((operatorId) => this.api.breakGlassRedeem(operatorId, code));
    });
  }

  private async open(on: boolean): Promise<void> {
    byId('forgot-key').setAttribute('aria-expanded', String(on));
    setText(byId('break-glass-result'), '');
    if (!on) {
      byId<HTMLInputElement>('break-glass-operator').value = '';
      byId<HTMLInputElement>('break-glass-code').value = '';
    }
    show(byId('break-glass'), on);
    await this.hooks.hold(on);
    if (on) byId('break-glass-operator').focus();
  }

  private async run(call: (operatorId: string) => Promise<IpcResult<Started>>): Promise<void> {
    if (this.busy) return;
    const operatorId = byId<HTMLInputElement>('break-glass-operator').value.trim();
    const result = byId('break-glass-result');
    if (!/^[A-Za-z0-9._:-]{1,128}$/.test(operatorId)) {
      setText(result, 'Type your operator ID first (letters, digits, dots or dashes).');
      byId('break-glass-operator').focus();
      return;
    }
    this.busy = true;
    setText(result, 'Checking…');
    const answer = await call(operatorId);
    this.busy = false;
    if (!answer.ok) {
      setText(result, `${explainBreakGlass(answer.error.code)} (For IT: ${answer.error.code})`);
      return;
    }
    await this.open(false);
  }
}

/**
 * The mark under the workspace's level line while a break-glass session is in front (called by the
 * operator UI's render): read from the agent's status (the session carries its terms), so a reload
 * keeps it, whichever way the session came to the front.
 */
export function renderBreakGlassMark(front: AgentStatusView['front'] | undefined): void {
  const mark = document.getElementById('break-glass-mark');
  if (mark === null) return;
  const terms = front?.breakGlass;
  if (terms !== undefined) setText(mark, breakGlassMark(terms, Date.now()));
  show(mark, terms !== undefined);
}
