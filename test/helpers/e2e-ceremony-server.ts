import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * The console renderer's ceremony surface for browser end-to-end tests: an HTML page plus a bundle of
 * `renderer/ceremony.ts`, served from `http://localhost:<port>`. The page has no network of its own
 * (strict CSP, no fetch): the test, standing in for the console's main process, hands it options and
 * takes back responses.
 */
export const CEREMONY_CSP = "default-src 'self'; script-src 'self'";
export const BUNDLE_PATH = '/ceremony.js';

const ENTRY = fileURLToPath(new URL('../../renderer/ceremony.ts', import.meta.url));

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Baton console: ceremony surface</title>
    <script src="${BUNDLE_PATH}"></script>
  </head>
  <body>
    <h1>Baton console: ceremony surface</h1>
    <p>The browser half of each WebAuthn ceremony; the main process does all backend traffic.</p>
    <ol id="log"></ol>
  </body>
</html>
`;

let bundle: Promise<string> | undefined;

/** Bundles the renderer's ceremony module once per worker, as an IIFE exposing `BatonCeremony`. */
export function ceremonyBundle(): Promise<string> {
  bundle ??= build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'iife',
    globalName: 'BatonCeremony',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
  }).then((result) => {
    const file = result.outputFiles[0];
    if (file === undefined) throw new Error('esbuild produced no output for renderer/ceremony.ts');
    return file.text;
  });
  return bundle;
}

export interface CeremonyServer {
  /** `http://localhost:<port>`: the origin WebAuthn sees (127.0.0.1 is not a valid RP ID). */
  origin: string;
  /** Every path the browser asked for, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves the ceremony page and bundle on a free loopback port. */
export async function startCeremonyServer(): Promise<CeremonyServer> {
  const script = await ceremonyBundle();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    requests.push(path);
    const headers = {
      'content-security-policy': CEREMONY_CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    };
    if (req.method !== 'GET') {
      res.writeHead(405, headers).end();
    } else if (path === '/') {
      res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (path === BUNDLE_PATH) {
      res.writeHead(200, { ...headers, 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    } else if (path === '/favicon.ico') {
      res.writeHead(204, headers).end();
    } else {
      res.writeHead(404, headers).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://localhost:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
