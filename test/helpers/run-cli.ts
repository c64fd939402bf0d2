/**
 * A command-line tool of the project as IT runs it: a child process of this Node with tsx, from the
 * project's root, with BATON_DATABASE_URL cleared so that only the arguments choose the database.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** A finished run: its exit status and its output. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cli` (a path from the project's root, e.g. `backend/rotate-key-cli.ts`) with `args`. */
export function runCli(cli: string, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, cli), ...args], {
      cwd: ROOT,
      env: { ...process.env, BATON_DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
