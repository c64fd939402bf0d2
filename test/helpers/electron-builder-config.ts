import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const CHILD = join(import.meta.dirname, 'electron-builder-config-child.ts');

export interface BuilderConfigJob {
  /** Configuration file, relative to the repository (`build/electron-builder.json`). */
  file: string;
  /** Top-level keys replaced after loading and before the schema check. */
  override?: Record<string, unknown>;
}

export type BuilderConfigOutcome = { ok: true; config: unknown } | { ok: false; error: string };

/**
 * Loads and validates electron-builder configurations with electron-builder's own loader and schema,
 * in a child process. Never in the test process: electron-builder logs to stdout, and a `node --test`
 * file's stdout is the test runner's serialized protocol — a stray line there intermittently crashed
 * the run with "Unable to deserialize cloned data". What the child printed is kept and named in the
 * error when it fails.
 */
export function checkBuilderConfigs(
  jobs: BuilderConfigJob[],
): Promise<{ outcomes: BuilderConfigOutcome[]; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(jobs)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let outcomes: BuilderConfigOutcome[] | undefined;
  child.once('message', (message) => (outcomes = message as BuilderConfigOutcome[]));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`electron-builder's config loader did not answer within 60 s; it printed:\n${output}`));
    }, 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (outcomes !== undefined && outcomes.length === jobs.length) resolve({ outcomes, output });
      else
        reject(new Error(`electron-builder's config loader exited (${signal ?? code}) without an answer:\n${output}`));
    });
  });
}
