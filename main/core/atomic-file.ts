import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/**
 * Replaces a small file so a crash leaves either the old or the new content, never half. The
 * temporary file is always a new one, private to this user (0600): a leftover (or a link planted
 * in its place) is removed first and the new one is created exclusively, so the write never
 * follows a link to another file and never inherits a wider mode.
 */
export function writeAtomically(path: string, content: string): void {
  const temp = `${path}.tmp`;
  rmSync(temp, { force: true });
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}
