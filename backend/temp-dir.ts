/**
 * Temporary directories for tests and benchmarks, removed when the process ends, passed or failed
 * (re-exported by test/helpers/temp-dir.ts; it lives here so that backend tests, another TypeScript
 * project, can use it too, and nothing in the backend imports it).
 * Each node:test file runs in a process of its own, so a directory made with tempDir() lives until
 * that file's last test and its after() hooks are done (a store or child still writing into it is
 * closed by then), and not in the system temp directory afterwards. Only a process killed by a
 * signal (no 'exit' event) leaves them; scripts/test.sh runs the suite in a temporary directory of
 * its own (TMPDIR) and removes that too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
let hooked = false;

function removeAll(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A fresh directory `<tmpdir>/<prefix>XXXXXX`, removed recursively when this process exits. */
export function tempDir(prefix: string): string {
  if (!hooked) {
    hooked = true;
    process.once('exit', removeAll);
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
