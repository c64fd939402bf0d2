import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const RENDERER_SRC = fileURLToPath(new URL('../../renderer/', import.meta.url));

/** Where `npm run build:renderer` puts the operator UI (what the shell serves). */
export const DEFAULT_RENDERER_DIR = fileURLToPath(new URL('../../.tmp/renderer/', import.meta.url));
/** The development page: the same UI plus the dev bridge client. Never shipped. */
export const DEFAULT_RENDERER_DEV_DIR = fileURLToPath(new URL('../../.tmp/renderer-dev/', import.meta.url));

/** The files a renderer directory holds; the UI server serves exactly these. */
import { DEV_BRIDGE_CLIENT_FILE } from './renderer-files.js';

export { RENDERER_FILES, DEV_BRIDGE_CLIENT_FILE } from './renderer-files.js';

const BRIDGE_MARKER = '<!--BRIDGE-->';

function bundle(entry: string, outfile: string): Promise<unknown> {
  return build({
    entryPoints: [join(RENDERER_SRC, entry)],
    outfile,
    bundle: true,
    // One IIFE per file, no eval, no inline code: the strict CSP holds.
    format: 'iife',
    platform: 'browser',
    target: 'chrome120',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
}

/**
 * Bundles the operator UI (`renderer/`) into `outDir`: index.html, operator-ui.js and
 * operator-ui.css. With `development`, also the dev bridge client, loaded before the UI by the
 * page; the production directory never contains it. A build tool: nothing at run time imports it.
 */
export async function buildRenderer(outDir: string, options: { development?: boolean } = {}): Promise<void> {
  const development = options.development === true;
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true, mode: 0o755 });
  const html = await readFile(join(RENDERER_SRC, 'index.html'), 'utf8');
  if (!html.includes(BRIDGE_MARKER)) throw new Error(`renderer/index.html lost its ${BRIDGE_MARKER} marker`);
  await Promise.all([
    bundle('main.ts', join(outDir, 'operator-ui.js')),
    development ? bundle('dev-bridge-client.ts', join(outDir, DEV_BRIDGE_CLIENT_FILE)) : undefined,
    copyFile(join(RENDERER_SRC, 'operator-ui.css'), join(outDir, 'operator-ui.css')),
    copyFile(join(RENDERER_SRC, 'favicon.svg'), join(outDir, 'favicon.svg')),
    writeFile(
      join(outDir, 'index.html'),
      html.replace(BRIDGE_MARKER, development ? `<script src="${DEV_BRIDGE_CLIENT_FILE}" defer></script>` : ''),
    ),
  ]);
}
