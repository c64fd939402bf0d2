import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BatonError } from '../shared/errors.js';

export const LOCK_FILE = 'baton.lock';

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file, if it is still this process's. */
  release(): void;
}

export interface LockDeps {
  pid: number;
  /** Whether a process with this id is running (signal 0). */
  isAlive: (pid: number) => boolean;
}

const DEFAULT_DEPS: LockDeps = { pid: process.pid, isAlive: processIsAlive };

/**
 * One backend per data directory: a lock file holding the owner's pid, created exclusively before
 * anything in the directory is touched. A lock held by a running process is refused with
 * DATA_DIR_LOCKED; one left by a process that is gone (a crash, a power cut) is taken over.
 */
export function acquireDataDirLock(dataDir: string, deps: LockDeps = DEFAULT_DEPS): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (error) {
      if (!isExists(error)) throw error;
      const holder = readPid(file);
      if (holder !== undefined && holder !== deps.pid && deps.isAlive(holder)) {
        throw new BatonError(
          'DATA_DIR_LOCKED',
          `The data directory ${dataDir} is in use by another Baton backend (pid ${holder}); stop it first, or start this one with another --data-dir`,
        );
      }
      // Stale (its process is gone) or unreadable: take it over.
      rmSync(file, { force: true });
      continue;
    }
    writeSync(fd, `${deps.pid}\n`);
    closeSync(fd);
    return {
      file,
      release: () => {
        if (readPid(file) === deps.pid) rmSync(file, { force: true });
      },
    };
  }
  throw new BatonError('DATA_DIR_LOCKED', `The lock file ${file} could not be taken`);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isExists(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EEXIST';
}
