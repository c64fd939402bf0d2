import { announce, errorBox, h, replace } from './dom.js';

export interface Confirmation {
  /** The dialog's title: the action itself ("Revoke operator Ada Teller everywhere"). */
  title: string;
  /** What ends or changes, one sentence each. */
  consequences: (string | Node)[];
  /** The confirm button's words ("Revoke operator"). */
  confirm: string;
  /** A second confirmation: the admin types this text (an operator's name) before the button works. */
  typeToConfirm?: string;
  /** Styles the confirm button as destructive (default) or as the primary action. */
  tone?: 'danger' | 'primary';
}

/**
 * Asks before an action that cannot be undone, naming the action and what ends. Resolves true
 * only when the admin pressed the confirm button (and typed the name, when one is asked for).
 */
export function confirmAction(c: Confirmation): Promise<boolean> {
  return new Promise((resolve) => {
    const confirm = h(
      'button',
      { type: 'button', class: c.tone ?? 'danger', id: 'confirm-action', disabled: c.typeToConfirm !== undefined },
      c.confirm,
    );
    const cancel = h('button', { type: 'button', id: 'confirm-cancel' }, 'Cancel');
    const typed = h('input', { id: 'confirm-typed', autocomplete: 'off', spellcheck: 'false' });
    typed.addEventListener('input', () => {
      confirm.disabled = typed.value.trim() !== c.typeToConfirm;
    });
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-what', id: 'confirm-dialog' },
      h('h2', { id: 'confirm-title' }, c.title),
      h(
        'ul',
        { id: 'confirm-what', class: 'consequences' },
        c.consequences.map((line) => h('li', {}, line)),
      ),
      c.typeToConfirm === undefined
        ? null
        : h('label', { for: 'confirm-typed' }, `To confirm, type the name “${c.typeToConfirm}”`, typed),
      h('div', { class: 'row' }, confirm, cancel),
    );
    const finish = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    confirm.addEventListener('click', () => finish(true));
    document.body.append(dialog);
    dialog.showModal();
    (c.typeToConfirm === undefined ? cancel : typed).focus();
  });
}

/** "1 console" / "3 consoles". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A revocation the admin confirms first: what the three revoke buttons of the tokens, services and receivers pages do. */
export interface ConfirmedRevocation {
  confirmation: Confirmation;
  /** The request that revokes. */
  revoke: () => Promise<unknown>;
  /** Said to screen readers (and shown in `message` when `show`) once it is done. */
  done: string;
  show?: boolean;
  /** Where an error (or, with `show`, the outcome) is shown. */
  message: HTMLElement;
  /** Reloads what the revocation changed. */
  then: () => unknown;
}

/** Asks (naming what ends), revokes, says so and reloads; an error is shown in `message`, nothing else changes. */
export async function confirmedRevocation(r: ConfirmedRevocation): Promise<void> {
  try {
    if (!(await confirmAction(r.confirmation))) return;
    await r.revoke();
    if (r.show === true) replace(r.message, h('div', { class: 'ok', role: 'status' }, r.done));
    announce(r.done);
    await r.then();
  } catch (error) {
    replace(r.message, errorBox(error));
  }
}

/** A table row's Revoke button (disabled once revoked), named for screen readers by what it revokes. */
export function revokeButton(revoked: boolean, what: string, onClick: () => unknown): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'danger', disabled: revoked, 'aria-label': what }, 'Revoke');
  button.addEventListener('click', () => void onClick());
  return button;
}
