/** Small DOM helpers: every text goes in through textContent, never as HTML. */
import { serverNow } from './server-clock.js';

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(key.replace(/^on/, ''), value);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  append(element, children.flat());
  return element;
}

export function append(parent: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(typeof child === 'number' ? String(child) : child);
  }
}

export function replace(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren();
  append(parent, children.flat());
}

/** The admin's time zone (the browser's), shown beside every date so nobody has to guess. */
export function timeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/**
 * An ISO date and time in the admin's time zone, with the zone: `2026-12-04 14:03 (Europe/Paris)`
 * (`seconds`: `14:03:07`; `zone: false` where a heading already names the zone).
 */
export function fmtTime(ms: number | null | undefined, options: { seconds?: boolean; zone?: boolean } = {}): string {
  if (ms === null || ms === undefined) return '—';
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: timeZone(),
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '00';
  const time = `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}${options.seconds === true ? `:${part('second')}` : ''}`;
  return options.zone === false ? time : `${time} (${timeZone()})`;
}

export function fmtAgo(ms: number | null | undefined, now = serverNow()): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** A table with a caption; an honest sentence instead when there are no rows. */
export function table(caption: string, headers: string[], rows: Child[][], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    {},
    h('caption', { class: 'sr-only' }, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((cells) =>
        h(
          'tr',
          {},
          cells.map((c) => h('td', {}, c)),
        ),
      ),
    ),
  );
}

export function pill(text: string, tone: 'good' | 'bad' | 'warn' | '' = ''): HTMLElement {
  return h('span', { class: `pill ${tone}` }, text);
}

let statusTimer: number | undefined;
/** A short message in the polite live region (screen readers announce it). */
export function announce(text: string): void {
  const status = document.getElementById('status');
  if (status === null) return;
  replace(status, h('div', {}, text));
  window.clearTimeout(statusTimer);
  statusTimer = window.setTimeout(() => status.replaceChildren(), 6000);
}

export function errorBox(error: unknown): HTMLElement {
  return h('div', { class: 'error', role: 'alert' }, describeError(error));
}

export function describeError(error: unknown): string {
  if (error instanceof Error && 'code' in error) return `${String(error.code)}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
