import type { RouteId } from '../shared/routes.js';
import { api, endpoint } from './api.js';
import { errorBox, fmtTime, h, replace } from './dom.js';
import { entityPicker, type PickerKind } from './picker.js';

/**
 * A table of an estate (thousands of consoles, tens of thousands of operators, millions of events):
 * search, filters, sort by column header and next / previous pages, all served by the admin API
 * (cursor paging, docs/api.md "Lists"). The state lives in the page's URL (`#/consoles?q=york&sort=site`),
 * so a reload, a bookmark, the back button and a link sent to a colleague show the same page.
 */
type Cell = Node | string | number | null | undefined | false;

export interface Column<T> {
  label: string;
  /** The API's sort key for this column, if it sorts. */
  sort?: string;
  cell: (row: T, names: Names) => Cell | Cell[];
}

export interface Filter {
  /** The query parameter. */
  key: string;
  label: string;
  /** A select of these [value, label]s (with "any" first); a text box when absent. */
  options?: readonly (readonly [string, string])[];
  placeholder?: string;
  /** A search-as-you-type picker of one console or operator (the API's first matches, never a whole list). */
  picker?: PickerKind;
}

export interface Names {
  consoles: Record<string, { name: string | null; site: string | null }>;
  operators: Record<string, string>;
}

export interface PagedTableOptions<T> {
  /** A short id for the elements (`consoles` → `consoles-search`, `consoles-next`). */
  id: string;
  route: RouteId;
  /** The answer's key holding the rows. */
  listKey: string;
  caption: string;
  columns: Column<T>[];
  filters?: Filter[];
  searchLabel: string;
  /** The query parameter the search box fills (`q` unless the list searches by another, e.g. `target`). */
  searchKey?: string;
  searchPlaceholder?: string;
  /** The sort and order the API uses when none is given (shown as such on the header). */
  defaultSort: string;
  defaultOrder: 'asc' | 'desc';
  empty: string;
  limit?: number;
  /** The route's path parameters (an operator's codes: `{ id }`). */
  params?: Record<string, string>;
  /**
   * Where the table keeps its state in the address when a page has more than one table: its keys
   * are written `<scope>.q`, `<scope>.cursor`… (the page's first table keeps the plain keys).
   */
  scope?: string;
  /** Query parameters always sent, not shown in the form (a view's mode, e.g. the review list's `state`). */
  fixed?: Record<string, string>;
  /** Called with each answer (the rows shown and their names), e.g. to draw a picture of them. */
  onPage?: (rows: T[], names: Names) => void;
}

interface PageInfo {
  next: string | null;
  prev: string | null;
  limit: number;
  sort: string;
  order: 'asc' | 'desc';
}

/** The list state kept in the hash's query: `#/consoles?q=…` (the part before `?` is the page). */
export function hashQuery(): URLSearchParams {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

function setHashQuery(query: URLSearchParams): void {
  const i = location.hash.indexOf('?');
  const base = i < 0 ? location.hash : location.hash.slice(0, i);
  const text = query.toString();
  location.hash = text === '' ? base : `${base}?${text}`;
}

/** A table's own keys of the address: `<scope>.key` for a scoped table, the keys without a dot otherwise. */
function scopedQuery(scope: string | undefined): URLSearchParams {
  const own = new URLSearchParams();
  for (const [k, v] of hashQuery()) {
    if (scope === undefined ? !k.includes('.') : k.startsWith(`${scope}.`)) {
      own.set(scope === undefined ? k : k.slice(scope.length + 1), v);
    }
  }
  return own;
}

/** Replaces a table's own keys in the address, keeping the other tables' places. */
function setScopedQuery(scope: string | undefined, own: URLSearchParams): void {
  const all = new URLSearchParams();
  for (const [k, v] of hashQuery()) {
    if (scope === undefined ? k.includes('.') : !k.startsWith(`${scope}.`)) all.set(k, v);
  }
  for (const [k, v] of own) all.set(scope === undefined ? k : `${scope}.${k}`, v);
  setHashQuery(all);
}

export function pagedTable<T>(options: PagedTableOptions<T>): HTMLElement {
  const state = scopedQuery(options.scope);
  const setHashQuery = (query: URLSearchParams) => setScopedQuery(options.scope, query);
  const limit = options.limit ?? 25;
  const sort = state.get('sort') ?? options.defaultSort;
  const order =
    state.get('order') === 'asc' || state.get('order') === 'desc' ? state.get('order') : options.defaultOrder;
  const pageNo = Math.max(1, Number(state.get('p') ?? '1') || 1);
  const searchKey = options.searchKey ?? 'q';

  const search = h('input', {
    id: `${options.id}-search`,
    type: 'search',
    value: state.get(searchKey) ?? '',
    maxlength: 200,
    placeholder: options.searchPlaceholder ?? '',
    size: 28,
  });
  const filterInputs = (options.filters ?? []).map((f) => {
    const value = state.get(f.key) ?? '';
    if (f.picker !== undefined) {
      const picker = entityPicker({
        id: `${options.id}-${f.key}`,
        kind: f.picker,
        value,
        placeholder: f.placeholder ?? 'type a name…',
        size: 14,
      });
      return { filter: f, input: picker.element, read: picker.value };
    }
    const input =
      f.options === undefined
        ? h('input', {
            id: `${options.id}-${f.key}`,
            value,
            maxlength: 200,
            size: 14,
            placeholder: f.placeholder ?? '',
          })
        : h(
            'select',
            { id: `${options.id}-${f.key}` },
            h('option', { value: '' }, 'any'),
            f.options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)),
          );
    return { filter: f, input, read: () => input.value.trim() };
  });
  const form = h(
    'form',
    { class: 'row table-tools', role: 'search', 'aria-label': options.searchLabel },
    h('label', { for: `${options.id}-search` }, options.searchLabel, search),
    filterInputs.map(({ filter, input }) => h('label', { for: `${options.id}-${filter.key}` }, filter.label, input)),
    h('button', { type: 'submit', id: `${options.id}-apply` }, 'Search'),
    h(
      'button',
      { type: 'button', id: `${options.id}-clear`, onclick: () => setHashQuery(new URLSearchParams()) },
      'Clear',
    ),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (search.value.trim() !== '') next.set(searchKey, search.value.trim());
    for (const { filter, read } of filterInputs) if (read() !== '') next.set(filter.key, read());
    if (state.has('sort')) next.set('sort', sort);
    if (state.has('order')) next.set('order', order ?? options.defaultOrder);
    setHashQuery(next);
  });

  // What the address asks for that the form cannot show (a chart's click-through: a time window, several
  // types, an origin): said in words above the rows, with a way back to the whole list.
  const shown = new Set([searchKey, 'p', 'sort', 'order', 'cursor', 'limit']);
  const hidden = [...state].filter(([k, v]) => {
    if (shown.has(k)) return false;
    const filter = (options.filters ?? []).find((f) => f.key === k);
    if (filter === undefined) return true;
    return filter.options !== undefined && !filter.options.some(([value]) => value === v);
  });
  const describe = ([k, v]: [string, string]): string => {
    if (k === 'from') return `from ${fmtTime(Number(v))}`;
    if (k === 'to') return `until ${fmtTime(Number(v))}`;
    return `${k}: ${v.split(',').join(' or ')}`;
  };
  const notice =
    hidden.length === 0
      ? null
      : h(
          'p',
          { class: 'notice', id: `${options.id}-window` },
          `Showing only ${hidden.map(describe).join(', ')}. `,
          h(
            'button',
            {
              type: 'button',
              id: `${options.id}-all`,
              onclick: () => {
                const next = new URLSearchParams();
                for (const [k, v] of state)
                  if (!hidden.some(([hk]) => hk === k) && k !== 'cursor' && k !== 'p') next.set(k, v);
                setHashQuery(next);
              },
            },
            'Show all',
          ),
        );
  const body = h('div', { class: 'table-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('nav', { class: 'pager', 'aria-label': `${options.caption} pages` });
  const wrapper = h('div', { class: 'paged-table', id: `${options.id}-table` }, form, notice, body, pager);

  const go = (changes: Record<string, string | undefined>) => {
    const next = scopedQuery(options.scope);
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined) next.delete(k);
      else next.set(k, v);
    }
    setHashQuery(next);
  };

  const header = (column: Column<T>): HTMLElement => {
    if (column.sort === undefined) return h('th', { scope: 'col' }, column.label);
    const active = column.sort === sort;
    const nextOrder = active && order === 'asc' ? 'desc' : active ? 'asc' : 'asc';
    const button = h(
      'button',
      {
        type: 'button',
        class: 'sort',
        id: `${options.id}-sort-${column.sort}`,
        title: `Sort by ${column.label} (${nextOrder === 'asc' ? 'ascending' : 'descending'})`,
        onclick: () => go({ sort: column.sort, order: nextOrder, cursor: undefined, p: undefined }),
      },
      column.label,
      active ? (order === 'asc' ? ' ▲' : ' ▼') : '',
    );
    return h(
      'th',
      { scope: 'col', 'aria-sort': active ? (order === 'asc' ? 'ascending' : 'descending') : 'none' },
      button,
    );
  };

  const load = async () => {
    const query: Record<string, string | number> = {
      ...options.fixed,
      limit,
      sort,
      order: order ?? options.defaultOrder,
    };
    for (const [k, v] of state) if (!['p', 'sort', 'order', 'limit'].includes(k)) query[k] = v;
    try {
      const answer = await api<
        Record<string, unknown> & { page: PageInfo; total?: number; totalAtLeast?: boolean; names?: Names }
      >(...endpoint(options.route as 'adminConsoles', (options.params ?? {}) as Record<string, never>, query));
      const rows = (answer[options.listKey] ?? []) as T[];
      const names: Names = answer.names ?? { consoles: {}, operators: {} };
      options.onPage?.(rows, names);
      const filtered =
        state.has(searchKey) || hidden.length > 0 || (options.filters ?? []).some((f) => state.has(f.key));
      if (rows.length === 0) {
        replace(
          body,
          h(
            'p',
            { class: 'empty', id: `${options.id}-empty` },
            filtered ? 'Nothing matches this search.' : options.empty,
          ),
        );
      } else {
        replace(
          body,
          h(
            'table',
            { id: `${options.id}-rows` },
            h('caption', { class: 'sr-only' }, options.caption),
            h('thead', {}, h('tr', {}, options.columns.map(header))),
            h(
              'tbody',
              {},
              rows.map((row) =>
                h(
                  'tr',
                  {},
                  options.columns.map((c) => {
                    const cell = c.cell(row, names);
                    return h('td', {}, Array.isArray(cell) ? cell : [cell]);
                  }),
                ),
              ),
            ),
          ),
        );
      }
      const prev = h(
        'button',
        {
          type: 'button',
          id: `${options.id}-prev`,
          disabled: answer.page.prev === null,
          onclick: () => go({ cursor: answer.page.prev ?? undefined, p: String(Math.max(1, pageNo - 1)) }),
        },
        '← Previous',
      );
      const next = h(
        'button',
        {
          type: 'button',
          id: `${options.id}-next`,
          disabled: answer.page.next === null,
          onclick: () => go({ cursor: answer.page.next ?? undefined, p: String(pageNo + 1) }),
        },
        'Next →',
      );
      const first = h(
        'button',
        {
          type: 'button',
          id: `${options.id}-first`,
          disabled: !state.has('cursor'),
          onclick: () => go({ cursor: undefined, p: undefined }),
        },
        'First page',
      );
      const from = (pageNo - 1) * limit + 1;
      const position =
        rows.length === 0
          ? ''
          : `Rows ${from.toLocaleString('en-GB')}–${(from + rows.length - 1).toLocaleString('en-GB')}${
              answer.total === undefined
                ? ''
                : ` of ${answer.totalAtLeast === true ? 'more than ' : ''}${answer.total.toLocaleString('en-GB')}`
            }`;
      replace(pager, first, prev, h('span', { class: 'muted', id: `${options.id}-position` }, position), next);
    } catch (error) {
      replace(body, errorBox(error));
      // A cursor from another list or sort (an old bookmark): offer the first page.
      replace(
        pager,
        h(
          'button',
          { type: 'button', id: `${options.id}-first`, onclick: () => go({ cursor: undefined, p: undefined }) },
          'First page',
        ),
      );
    }
  };
  void load();
  return wrapper;
}
