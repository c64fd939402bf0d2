import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DEV_BRIDGE_CLIENT_FILE, RENDERER_FILES } from './renderer-files.js';

/**
 * Serves the built operator UI on `http://localhost:<port>` (WebAuthn accepts http only on
 * localhost), bound to 127.0.0.1. Used by the Electron shell and by the development bridge; no
 * Electron here. The files are read once at start and served from memory: no path from a request
 * ever reaches the filesystem, so there is nothing to traverse.
 */
export interface UiServerOptions {
  /** A directory built by `buildRenderer`. */
  dir: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /**
   * DEVELOPMENT ONLY: serve the dev bridge client and let the page open the bridge's WebSocket
   * (`connect-src ws://localhost:<port>`). The shell never sets it.
   */
  devBridge?: boolean;
}

export interface UiServer {
  /** `http://localhost:<port>`: the exact origin the backend must pin. */
  readonly origin: string;
  /** `http://localhost:<port>/`: the page to load. */
  readonly url: string;
  readonly port: number;
  /** The Content-Security-Policy every response carries. */
  readonly csp: string;
  /** The HTTP server, for the dev bridge's WebSocket upgrade. */
  readonly server: Server;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/**
 * The operator UI's CSP: its own script and stylesheet, no inline code, no eval, no framing, no
 * network at all in production (the renderer has none: the main process does every backend call);
 * in development only the bridge's WebSocket on the same host and port.
 */
export function uiCsp(port: number, devBridge: boolean): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src ${devBridge ? `'self' ws://localhost:${port}` : "'none'"}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Starts `server` on 127.0.0.1 (`port` 0 or absent: a free one); resolves with the port it listens on. */
export async function listenOnLoopback(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const devBridge = options.devBridge === true;
  const names = [...RENDERER_FILES, ...(devBridge ? [DEV_BRIDGE_CLIENT_FILE] : [])];
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of names) {
    let body: Buffer;
    try {
      body = await readFile(join(options.dir, name));
    } catch {
      throw new Error(
        `The operator UI is not built (${name} is missing in ${options.dir}): run "npm run build:renderer".`,
      );
    }
    files.set(`/${name}`, { body, type: TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream' });
  }
  const index = files.get('/index.html');
  if (index !== undefined) files.set('/', index);

  const server = createServer();
  const port = await listenOnLoopback(server, options.port);
  const csp = uiCsp(port, devBridge);
  const headers = {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=(), serial=(), hid=()',
  };
  const hosts = new Set([`localhost:${port}`, `127.0.0.1:${port}`]);

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: string | Buffer, type = 'text/plain; charset=utf-8', extra = {}) => {
      res.writeHead(status, { ...headers, ...extra, 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    // Another Host is a page on another name pointing at loopback (DNS rebinding): refused.
    if (!hosts.has(req.headers.host ?? '')) return send(421, 'Misdirected request\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(405, 'Method not allowed\n', undefined, { allow: 'GET, HEAD' });
    }
    // The path is looked up as is (no decoding, no normalisation) among the few built files.
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const file = files.get(path);
    if (file === undefined) return send(404, 'Not found\n');
    return send(200, file.body, file.type);
  });

  return {
    origin: `http://localhost:${port}`,
    url: `http://localhost:${port}/`,
    port,
    csp,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
