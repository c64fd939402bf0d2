import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import type { Route } from './router.js';

/** Where `npm run build:admin` (and `npm start` / `npm test`) put the admin console bundle. */
export const DEFAULT_ADMIN_CONSOLE_DIR = fileURLToPath(new URL('../../.tmp/admin-console/', import.meta.url));

/**
 * The admin console's CSP: its own script and stylesheet only, no inline code, no framing, network
 * only to its own origin (the admin API and the live stream).
 */
export const ADMIN_CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS: Record<string, { file: string; type: string }> = {
  '': { file: 'index.html', type: 'text/html; charset=utf-8' },
  'admin.js': { file: 'admin.js', type: 'text/javascript; charset=utf-8' },
  'admin.css': { file: 'admin.css', type: 'text/css; charset=utf-8' },
};

/** A baton on a dark square: the tab icon, so the browser does not ask for a missing /favicon.ico. */
const FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1b1f24"/>' +
  '<path d="M4 12 12 4" stroke="#ffbf47" stroke-width="2.5" stroke-linecap="round"/></svg>';

const HEADERS = {
  'content-security-policy': ADMIN_CONSOLE_CSP,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
} as const;

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { ...HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Serves the built admin console under `/admin/`; says plainly when it has not been built. */
export function adminAssetRoutes(dir: string): Route[] {
  const serve = async (res: ServerResponse, name: string) => {
    if (name === 'favicon.svg') {
      send(res, 200, 'image/svg+xml', FAVICON);
      return;
    }
    // Own keys only: `constructor`, `__proto__` and friends are not assets.
    const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (asset === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', 'Not found\n');
      return;
    }
    try {
      send(res, 200, asset.type, await readFile(join(dir, asset.file)));
    } catch {
      send(
        res,
        503,
        'text/plain; charset=utf-8',
        // No filesystem path here: the page is public, and the operator knows where the backend runs.
        'The admin console is not built. Run "npm run build:admin" (npm start does it for you).\n',
      );
    }
  };
  return [
    {
      route: 'adminPageBare',
      handler: (ctx) => {
        ctx.res.writeHead(308, { ...HEADERS, location: '/admin/' }).end();
        return undefined;
      },
    },
    {
      route: 'adminPage',
      handler: async (ctx) => {
        await serve(ctx.res, '');
        return undefined;
      },
    },
    {
      route: 'adminAsset',
      handler: async (ctx) => {
        await serve(ctx.res, ctx.params.file ?? '');
        return undefined;
      },
    },
  ];
}
