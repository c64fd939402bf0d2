import { createHash, randomBytes } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { DevBridge } from './dev-bridge.js';
import { listenOnLoopback } from './ui-server.js';

/**
 * DEVELOPMENT ONLY — never part of a packaged build (the Electron shell gives the workspace app its
 * `window.baton` through main/preload/workspace.ts and never imports this file).
 *
 * The browser stand-in for the workspace view and its preload: a loopback server that serves the
 * workspace app (a reverse proxy to `appUrl`) with one inline script put in its HTML pages, the
 * same three functions the preload exposes (`window.baton.getAssurance`, `stepUp`, `actionToken`).
 * They call this server on the page's own origin (`POST /__baton/ipc`), which hands them to the
 * agent's IpcDispatcher as a `workspace` caller, exactly as the shell does for a workspace view.
 *
 * As in the shell, a page belongs to one session: the session in front when the page was loaded
 * (or, if nobody was, when it first called); once another session is in front, its calls are
 * refused (NO_SESSION_IN_FRONT) until it is reloaded. Input in the page counts as the operator
 * being there (`POST /__baton/activity`), as input in a workspace view does in the shell.
 * Differences from Electron, said plainly: the page is an ordinary browser tab beside the operator
 * UI (not a view inside it), one tab serves whoever is in front, and nothing clears its storage
 * between operators.
 */
export interface DevWorkspaceOptions {
  bridge: DevBridge;
  /** The workspace app, e.g. `http://127.0.0.1:8480/`. */
  appUrl: string | URL;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface DevWorkspace {
  /** `http://localhost:<port>`: the origin the workspace app is opened on in the browser. */
  readonly origin: string;
  /** `http://localhost:<port>/`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Reserved path prefix on the workspace origin: never proxied to the app. */
export const DEV_WORKSPACE_PREFIX = '/__baton/';
/** Page bindings kept (one per HTML load); the oldest go first. */
const MAX_PAGES = 256;
/** Largest call body (an action-token request with a challenge is well under 4 KiB). */
const MAX_BODY = 16 * 1024;

/** The inline script given to each HTML page: the preload's API over same-origin HTTP. */
function shim(page: string): string {
  return `(() => {
  const page = ${JSON.stringify(page)};
  const post = (path, body) => fetch('/__baton/' + path, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ page, ...body }),
    credentials: 'omit', cache: 'no-store',
  });
  const call = (channel, payload) => post('ipc', { channel, payload }).then((r) => r.json()).catch(() =>
    ({ ok: false, error: { code: 'INTERNAL', message: 'The development agent cannot be reached' } }));
  Object.defineProperty(window, 'baton', { configurable: false, writable: false, value: Object.freeze({
    getAssurance: () => call('workspace:get-assurance', {}),
    stepUp: (action) => call('workspace:step-up', { action }),
    actionToken: (request) => call('workspace:action-token', request),
  }) });
  let busy = false, again = false, last = 0;
  const active = () => {
    if (busy) { again = true; return; }
    busy = true;
    const wait = Math.max(0, last + 1000 - Date.now());
    setTimeout(() => post('activity', {}).catch(() => undefined).finally(() => {
      last = Date.now(); busy = false;
      if (again) { again = false; active(); }
    }), wait);
  };
  for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart']) addEventListener(type, active, { capture: true, passive: true });
})();`;
}

/**
 * The page's CSP, loosened only as far as the stand-in needs: its inline script (by hash, unless
 * inline scripts are allowed already) and calls to its own origin. A CSP in a `<meta>` tag is not
 * rewritten (the Electron preload needs no such thing; say so if your app uses one).
 */
export function csp(header: string, scriptHash: string): string {
  const directives = header
    .split(';')
    .map((d) => d.trim())
    .filter((d) => d !== '')
    .map((d) => d.split(/\s+/));
  const find = (name: string) => directives.find((d) => d[0]?.toLowerCase() === name);
  const add = (name: string, source: string) => {
    let directive = find(name);
    if (directive === undefined) {
      const fallback = find('default-src');
      if (fallback === undefined) return;
      directive = [name, ...fallback.slice(1)];
      directives.push(directive);
    }
    const sources = directive.slice(1).filter((s) => s.toLowerCase() !== "'none'");
    const inlineOk =
      sources.includes("'unsafe-inline'") && !sources.some((s) => /^'(nonce|sha256|sha384|sha512)-/i.test(s));
    if (source.startsWith("'sha256-") && inlineOk) return;
    if (!sources.includes(source)) sources.push(source);
    directive.splice(1, directive.length - 1, ...sources);
  };
  add(find('script-src-elem') === undefined ? 'script-src' : 'script-src-elem', `'sha256-${scriptHash}'`);
  add('connect-src', "'self'");
  return directives.map((d) => d.join(' ')).join('; ');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startDevWorkspace(options: DevWorkspaceOptions): Promise<DevWorkspace> {
  if (process.versions.electron !== undefined) {
    throw new Error('The development workspace never runs inside Electron: the shell has the workspace preload.');
  }
  const { bridge } = options;
  const app = new URL(options.appUrl);
  /** page id → the session it belongs to (undefined: not bound yet). */
  const pages = new Map<string, string | undefined>();
  const server: Server = createServer();
  const port = await listenOnLoopback(server, options.port);
  const origin = `http://localhost:${port}`;
  const hosts = new Set([`localhost:${port}`, `127.0.0.1:${port}`]);

  const plain = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${text}\n`);
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };

  /** The page's own calls: same origin only, JSON only (a cross-origin page cannot send this without CORS). */
  const own = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method !== 'POST') return plain(res, 405, 'Method not allowed');
    if (req.headers.origin !== `http://${req.headers.host ?? ''}`) return plain(res, 403, 'Forbidden');
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      return plain(res, 415, 'Unsupported media type');
    }
    let body: { page?: unknown; channel?: unknown; payload?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      return json(res, 400, { ok: false, error: { code: 'BAD_JSON', message: 'The call is not valid JSON' } });
    }
    const page = typeof body.page === 'string' ? body.page : '';
    if (!pages.has(page)) {
      return json(res, 403, { ok: false, error: { code: 'FORBIDDEN', message: 'Reload the workspace page' } });
    }
    const front = bridge.agent.status.front;
    let sessionId = pages.get(page);
    if (sessionId === undefined && front !== undefined) {
      sessionId = front.id;
      pages.set(page, sessionId);
    }
    if (path === 'activity') {
      if (sessionId !== undefined && front?.id === sessionId) bridge.agent.noteActivity();
      return json(res, 200, {});
    }
    if (path !== 'ipc') return plain(res, 404, 'Not found');
    // The dispatcher checks the channel (workspace channels only), the payload, and that this page's session is in front.
    const result = await bridge.dispatcher.dispatch(body.channel, body.payload, {
      kind: 'workspace',
      sessionId: sessionId ?? 'ses_nobody_in_front',
      // The app this server stands in for: its origin is the one the policy's apps[].workspaceOrigins name.
      origin: app.origin,
    });
    return json(res, 200, result);
  };

  /** Everything else goes to the workspace app; its HTML pages get the stand-in's script. */
  const proxy = (req: IncomingMessage, res: ServerResponse): void => {
    const headers: IncomingHttpHeaders = { ...req.headers, host: app.host };
    delete headers['accept-encoding']; // the HTML must be readable to put the script in
    const upstream = httpRequest(
      { protocol: app.protocol, hostname: app.hostname, port: app.port, method: req.method, path: req.url, headers },
      (answer) => {
        const type = String(answer.headers['content-type'] ?? '');
        if (!type.startsWith('text/html')) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          const page = randomBytes(18).toString('base64url');
          pages.set(page, bridge.agent.status.front?.id);
          while (pages.size > MAX_PAGES) pages.delete(pages.keys().next().value as string);
          const script = shim(page);
          const hash = createHash('sha256').update(script).digest('base64');
          const html = Buffer.concat(chunks).toString('utf8');
          const tag = `<script>${script}</script>`;
          const at = /<head[^>]*>/i.exec(html);
          const body =
            at === null
              ? tag + html
              : html.slice(0, at.index + at[0].length) + tag + html.slice(at.index + at[0].length);
          const out: IncomingHttpHeaders = { ...answer.headers };
          for (const hop of ['content-length', 'transfer-encoding', 'connection', 'keep-alive']) delete out[hop];
          const policy = out['content-security-policy'];
          if (typeof policy === 'string') out['content-security-policy'] = csp(policy, hash);
          res.writeHead(answer.statusCode ?? 502, { ...out, 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        answer.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) plain(res, 502, `The workspace app at ${app.origin} cannot be reached`);
      else res.destroy();
    });
    req.pipe(upstream);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Another Host is a page on another name pointing at loopback (DNS rebinding): refused.
    if (!hosts.has(req.headers.host ?? '')) return plain(res, 421, 'Misdirected request');
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith(DEV_WORKSPACE_PREFIX)) {
      own(req, res, path.slice(DEV_WORKSPACE_PREFIX.length)).catch(() => {
        if (!res.headersSent) plain(res, 500, 'Internal error');
      });
      return;
    }
    proxy(req, res);
  });

  return {
    origin,
    url: `${origin}/`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
