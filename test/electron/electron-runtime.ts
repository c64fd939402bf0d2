import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Whether the Electron runtime is installed (`node_modules/electron/dist`, which `npx electron
 * --version` downloads on a machine that can reach its release host). Returns the reason to skip, or
 * undefined when the Electron suite can run. With BATON_REQUIRE_ELECTRON=1 (CI) a missing runtime
 * is an error, so the suite can never pass by skipping where it was meant to run.
 */
export function electronRuntimeMissing(): string | undefined {
  const dist = join(ROOT, 'node_modules', 'electron', 'dist');
  const pathFile = join(ROOT, 'node_modules', 'electron', 'path.txt');
  const present =
    existsSync(dist) && existsSync(pathFile) && existsSync(join(dist, readFileSync(pathFile, 'utf8').trim()));
  if (present) return undefined;
  const reason =
    'SKIPPED: the Electron runtime is not installed (node_modules/electron/dist is missing; it cannot be downloaded on this machine). ' +
    'The Electron journeys run in .github/workflows/electron.yml.';
  if (process.env.BATON_REQUIRE_ELECTRON === '1') throw new Error(reason.replace('SKIPPED', 'REQUIRED BUT MISSING'));
  return reason;
}
