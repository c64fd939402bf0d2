/**
 * A baseline version of the agent's event outbox, for same-run comparisons: `main/core/event-outbox.ts`
 * (and the `atomic-file.ts` it used) as of a git revision, copied by `git show` into a temporary
 * directory with its imports of `shared/` pointed back at this checkout.
 *
 * Two ways to use it: `bench/outbox-main-thread-stall.ts` imports the copy beside the current file;
 * `--import ./bench/lib/use-baseline-outbox.ts` makes every import of `main/core/event-outbox` in a
 * benchmark process load the copy instead, so an unchanged benchmark (e.g. agent-outbox-throughput)
 * runs the whole agent on the baseline outbox.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tempDir } from '../../test/helpers/temp-dir.js';

/** The last commit whose outbox wrote and fsync'd on the main thread. */
export const DEFAULT_OUTBOX_BASELINE = '06345fa';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Writes the baseline copy and returns the file URL of its `event-outbox.ts`. */
export function writeBaselineOutbox(rev: string): string {
  const dir = join(tempDir('baton-outbox-baseline-'), 'core');
  mkdirSync(dir);
  const shared = pathToFileURL(join(ROOT, 'shared')).href;
  for (const file of ['event-outbox.ts', 'atomic-file.ts']) {
    let source: string;
    try {
      source = execFileSync('git', ['show', `${rev}:main/core/${file}`], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      if (file === 'atomic-file.ts') continue; // a revision that had no such file does not import it
      throw new Error(`git show ${rev}:main/core/${file} failed`);
    }
    writeFileSync(
      join(dir, file),
      source.replace(/from '\.\.\/\.\.\/shared\/([\w-]+)\.js'/g, `from '${shared}/$1.ts'`),
    );
  }
  return pathToFileURL(join(dir, 'event-outbox.ts')).href;
}

/** The short hash of a revision of this checkout. */
export function shortRev(rev: string): string {
  return execFileSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
}
