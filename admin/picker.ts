import { api, endpoint } from './api.js';
import { describeError, h, replace } from './dom.js';

/**
 * A search-as-you-type picker for one console or one operator of an estate of thousands: each
 * keystroke (after a short pause) asks the admin API for the first few matches by name (`q`, `limit`),
 * never the whole list. Choosing one keeps its id (what the API filters on, unambiguous) and shows its
 * name; text typed and not chosen is sent as typed (the API accepts a name or an id).
 *
 * Keyboard: ↓/↑ move through the matches, Enter chooses, Escape closes. ARIA combobox pattern
 * (input with `role=combobox`, a `listbox` of `option`s, `aria-activedescendant`).
 */
export type PickerKind = 'console' | 'operator';

export const PICKER_LIMIT = 8;

interface Match {
  id: string;
  label: string;
  detail: string;
}

export interface Picker {
  element: HTMLElement;
  input: HTMLInputElement;
  /** The chosen id, or the text as typed. */
  value: () => string;
}

interface ConsoleRow {
  id: string;
  name: string | null;
  site: string | null;
  channel: string;
}
interface OperatorRow {
  id: string;
  displayName: string;
  roles: string[];
}

async function search(kind: PickerKind, q: string): Promise<{ matches: Match[]; total: number; atLeast: boolean }> {
  const query = { q, limit: PICKER_LIMIT, sort: 'name', order: 'asc' } as const;
  if (kind === 'console') {
    const answer = await api<{ consoles: ConsoleRow[]; total?: number; totalAtLeast?: boolean }>(
      ...endpoint('adminConsoles', {}, query),
    );
    return {
      matches: answer.consoles.map((c) => ({
        id: c.id,
        label: `${c.name ?? c.id}${c.site === null ? '' : ` (${c.site})`}`,
        detail: `${c.channel} · ${c.id}`,
      })),
      total: answer.total ?? answer.consoles.length,
      atLeast: answer.totalAtLeast === true,
    };
  }
  const answer = await api<{ operators: OperatorRow[]; total?: number; totalAtLeast?: boolean }>(
    ...endpoint('adminOperators', {}, query),
  );
  return {
    matches: answer.operators.map((o) => ({
      id: o.id,
      label: o.displayName,
      detail: `${o.roles.join(', ') || 'no role'} · ${o.id}`,
    })),
    total: answer.total ?? answer.operators.length,
    atLeast: answer.totalAtLeast === true,
  };
}

export function entityPicker(options: {
  id: string;
  kind: PickerKind;
  /** From the address: an id (chosen before) or a name typed before. */
  value?: string;
  placeholder?: string;
  size?: number;
  /** Called when a match is chosen. */
  onChoose?: (id: string, label: string) => void;
}): Picker {
  const listId = `${options.id}-matches`;
  const input = h('input', {
    id: options.id,
    type: 'text',
    role: 'combobox',
    autocomplete: 'off',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    maxlength: 200,
    size: options.size ?? 16,
    placeholder: options.placeholder ?? (options.kind === 'console' ? 'type a name…' : 'type a name…'),
    value: options.value ?? '',
  });
  const list = h('ul', { id: listId, role: 'listbox', class: 'picker-list', hidden: true });
  const element = h('span', { class: 'picker', 'data-kind': options.kind }, input, list);
  let chosen: { id: string; label: string } | undefined;
  let matches: Match[] = [];
  let active = -1;
  let asked = 0;
  let timer: number | undefined;

  // Fixed to the viewport under the box: a card that scrolls its wide table sideways would clip it otherwise.
  const place = () => {
    list.hidden = false;
    const box = input.getBoundingClientRect();
    const width = Math.max(box.width, list.offsetWidth);
    list.style.top = `${Math.round(box.bottom + 2)}px`;
    list.style.left = `${Math.round(Math.max(4, Math.min(box.left, window.innerWidth - width - 4)))}px`;
    list.style.minWidth = `${Math.round(box.width)}px`;
  };
  const close = () => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  };
  const highlight = (i: number) => {
    active = i;
    list.querySelectorAll('[role=option]').forEach((li, n) => li.setAttribute('aria-selected', String(n === i)));
    if (i >= 0) input.setAttribute('aria-activedescendant', `${listId}-${i}`);
    else input.removeAttribute('aria-activedescendant');
  };
  const choose = (m: Match) => {
    chosen = { id: m.id, label: m.label };
    input.value = m.label;
    input.dataset.id = m.id;
    close();
    options.onChoose?.(m.id, m.label);
  };
  const show = (found: Match[], total: number, atLeast: boolean) => {
    matches = found;
    const more = total > found.length;
    replace(
      list,
      found.length === 0
        ? h('li', { class: 'muted picker-none', role: 'presentation' }, 'No match')
        : found.map((m, i) =>
            h(
              'li',
              {
                id: `${listId}-${i}`,
                role: 'option',
                'aria-selected': 'false',
                'data-id': m.id,
                // mousedown, not click: the input's blur would close the list first.
                onmousedown: (e: Event) => {
                  e.preventDefault();
                  choose(m);
                },
              },
              h('span', {}, m.label),
              h('span', { class: 'muted' }, ` ${m.detail}`),
            ),
          ),
      more
        ? h(
            'li',
            { class: 'muted picker-more', role: 'presentation' },
            `${found.length} of ${atLeast ? 'more than ' : ''}${total.toLocaleString('en-GB')}: type more to narrow`,
          )
        : null,
    );
    place();
    input.setAttribute('aria-expanded', 'true');
    highlight(-1);
  };
  const lookUp = () => {
    const q = input.value.trim();
    const mine = ++asked;
    if (q === '') {
      close();
      return;
    }
    search(options.kind, q).then(
      (r) => {
        // An older answer arriving after a newer keystroke's is dropped.
        if (mine === asked && document.activeElement === input) show(r.matches, r.total, r.atLeast);
      },
      (error: unknown) => {
        if (mine !== asked) return;
        replace(list, h('li', { class: 'error', role: 'presentation' }, describeError(error)));
        place();
      },
    );
  };
  input.addEventListener('input', () => {
    chosen = undefined;
    delete input.dataset.id;
    window.clearTimeout(timer);
    timer = window.setTimeout(lookUp, 150);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (list.hidden) {
        lookUp();
        return;
      }
      e.preventDefault();
      const n = matches.length;
      if (n === 0) return;
      highlight(e.key === 'ArrowDown' ? (active + 1) % n : (active - 1 + n) % n);
    } else if (e.key === 'Enter' && !list.hidden && active >= 0) {
      e.preventDefault();
      const m = matches[active];
      if (m !== undefined) choose(m);
    } else if (e.key === 'Escape') {
      close();
    }
  });
  input.addEventListener('blur', () => close());
  // The page moved under a list fixed to the viewport: close it (typing again reopens it).
  const moved = () => {
    if (!input.isConnected) {
      // The view was replaced: stop listening.
      window.removeEventListener('scroll', moved, { capture: true });
      window.removeEventListener('resize', moved);
    } else if (!list.hidden) close();
  };
  window.addEventListener('scroll', moved, { capture: true, passive: true });
  window.addEventListener('resize', moved, { passive: true });

  // An id from the address shows its name (one request for that one id).
  const initial = options.value ?? '';
  if (initial !== '') {
    void search(options.kind, initial).then(
      (r) => {
        const exact = r.matches.find((m) => m.id === initial);
        if (exact !== undefined && input.value === initial) {
          chosen = { id: exact.id, label: exact.label };
          input.value = exact.label;
          input.dataset.id = exact.id;
        }
      },
      () => undefined,
    );
  }

  return {
    element,
    input,
    value: () => (chosen !== undefined && input.value === chosen.label ? chosen.id : input.value.trim()),
  };
}
