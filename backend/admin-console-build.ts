import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ADMIN_SRC = fileURLToPath(new URL('../admin/', import.meta.url));

/**
 * Bundles the admin console (`admin/`) into `outDir`: index.html, admin.js (one IIFE, no eval, no
 * inline code, so the strict CSP holds) and admin.css. A build tool: `server.ts` never imports it.
 */
export async function buildAdminConsole(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true, mode: 0o755 });
  await build({
    entryPoints: [join(ADMIN_SRC, 'main.ts')],
    outfile: join(outDir, 'admin.js'),
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'chrome120',
    minify: true,
    sourcemap: false,
    logLevel: 'silent',
  });
  await copyFile(join(ADMIN_SRC, 'index.html'), join(outDir, 'index.html'));
  await copyFile(join(ADMIN_SRC, 'admin.css'), join(outDir, 'admin.css'));
}
