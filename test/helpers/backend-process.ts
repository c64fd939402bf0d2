import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { testDatabaseUrl } from './test-database.js';

const ROOT = join(import.meta.dirname, '..', '..');

export interface BackendProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Lines the process printed (JSON log lines and the bootstrap banner). */
  output: string[];
}

/**
 * Starts the real backend CLI as a child process and resolves once it listens: on the engine the
 * suite runs on (BATON_TEST_DATABASE, test-database.ts), where a backend started again on the same
 * data directory finds the same database.
 */
export async function spawnBackend(args: {
  dataDir: string;
  tokenFile: string;
  origin: string;
  extra?: string[];
}): Promise<BackendProcess> {
  const databaseUrl = await testDatabaseUrl(args.dataDir);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'backend', 'cli.ts'),
      '--port',
      '0',
      '--data-dir',
      args.dataDir,
      '--origin',
      args.origin,
      '--bootstrap-token-file',
      args.tokenFile,
      '--log-level',
      'info',
      ...(databaseUrl === undefined ? [] : ['--database', databaseUrl]),
      // One process (the default with PostgreSQL is one per core): the tests signal and kill this one.
      ...(args.extra?.includes('--workers') === true ? [] : ['--workers', '1']),
      ...(args.extra ?? []),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend did not start: ${output.join('\n')}`)), 60_000); // a cold tsx start on a loaded machine
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (!line.includes('baton backend listening')) return;
        const { url } = JSON.parse(line) as { url: string };
        clearTimeout(timer);
        resolve({ child, url: url.replace('127.0.0.1', 'localhost'), exited, output });
      });
    }
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`backend exited with ${String(code)} before listening: ${output.join('\n')}`));
    });
  });
}

export function readToken(file: string): string {
  return readFileSync(file, 'utf8').trim();
}
