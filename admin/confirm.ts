import { h } from './dom.js';

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
