import { api, setApiHooks, endpoint } from './api.js';
import { confirmWithPasskey, registerView, setupView, signInView, type AdminSession } from './auth.js';
import { apiTokensView } from './api-tokens-view.js';
import { auditView } from './audit-view.js';
import { breakGlassView } from './break-glass-view.js';
import { consolesView } from './consoles-view.js';
import { announce, fmtTime, h, replace, timeZone } from './dom.js';
import { integrationsView } from './integrations-view.js';
import { liveView } from './live-view.js';
import { operatorsView } from './operators-view.js';
import { picturesView } from './pictures-view.js';
import { policyView } from './policy-view.js';
import { revocationsView } from './revocations-view.js';
import { servicesView } from './services-view.js';
import { sessionsView } from './sessions-view.js';
import type { View } from './view.js';

/**
 * The admin console: a single page on the backend's admin origin. Every byte it shows comes from
 * the admin API; the session is an HttpOnly SameSite=Strict cookie the page never sees.
 */
const VIEWS: Record<string, View> = {
  live: liveView,
  operators: operatorsView,
  consoles: consolesView,
  sessions: sessionsView,
  revocations: revocationsView,
  policy: policyView,
  audit: auditView,
  pictures: picturesView,
  tokens: apiTokensView,
  integrations: integrationsView,
  services: servicesView,
  'break-glass': breakGlassView,
};

let session: AdminSession | undefined;
/** False until an admin has a passkey: the landing page is then the first-run setup. */
let adminExists = true;
let cleanup: (() => void) | void;

function elements() {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (main === null || nav === null || who === null) throw new Error('admin console page is incomplete');
  return { main, nav, who };
}

function signedOut(notice?: string): void {
  session = undefined;
  cleanup?.();
  cleanup = undefined;
  const { main, nav, who } = elements();
  nav.hidden = true;
  who.replaceChildren();
  if (location.hash.startsWith('#/register')) registerView(main, signedIn);
  else if (!adminExists || location.hash.startsWith('#/setup')) setupView(main, signedIn);
  else signInView(main, signedIn, notice);
}

function signedIn(next: AdminSession): void {
  session = next;
  const { nav, who } = elements();
  nav.hidden = false;
  const out = h('button', { type: 'button', id: 'sign-out' }, 'Sign out');
  out.addEventListener('click', () => {
    void api(...endpoint('adminSignOut'), {}).finally(() => signedOut());
  });
  replace(
    who,
    h('span', { id: 'signed-in-as' }, `${next.admin.displayName} (${next.admin.operatorId})`),
    h(
      'span',
      { class: 'muted', id: 'session-ends' },
      `session ends by ${fmtTime(next.session.expiresAt, { zone: false })}; 15 min idle limit · times in ${timeZone()}`,
    ),
    out,
  );
  announce(`Signed in as ${next.admin.displayName}`);
  adminExists = true;
  if (
    location.hash === '' ||
    location.hash === '#/' ||
    location.hash.startsWith('#/register') ||
    location.hash.startsWith('#/setup')
  )
    location.hash = '#/live';
  else route();
}

function route(): void {
  const { main, nav } = elements();
  if (session === undefined) {
    signedOut();
    return;
  }
  // `#/<page>[/<id>][?<list state>]`: the query part is a list's search, sort and page (paged-table.ts).
  const [, name = 'live', param] = /^#\/([a-z-]*)\/?([^?]*)/.exec(location.hash) ?? [];
  const view = VIEWS[name] ?? VIEWS.live;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  cleanup?.();
  main.replaceChildren();
  cleanup = view?.(main, param === undefined || param === '' ? undefined : decodeURIComponent(param));
  document.title = `Baton admin · ${name}`;
  main.focus();
}

async function boot(): Promise<void> {
  setApiHooks({ stepUp: confirmWithPasskey, signedOut: (reason) => signedOut(`Signed out: ${reason}`) });
  window.addEventListener('hashchange', () => {
    if (session === undefined) signedOut();
    else route();
  });
  try {
    // Public: whether any admin has a passkey yet. A first visitor gets the setup page, not an error.
    const status = await api<{ adminExists?: boolean }>(...endpoint('adminAuthStatus'));
    adminExists = status.adminExists !== false;
  } catch {
    adminExists = true;
  }
  try {
    const current = await api<AdminSession | { admin: null }>(...endpoint('adminAuthSession'));
    if (current.admin !== null) signedIn(current);
    else signedOut();
  } catch {
    // No session yet is the ordinary case on arrival: the sign-in (or setup) page, with no red notice.
    const { main } = elements();
    if (main.querySelector('.signin') === null) signedOut();
  }
}

document.addEventListener('DOMContentLoaded', () => void boot());
