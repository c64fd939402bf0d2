import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';

/** Replaces a small file so a crash leaves either the old or the new content, never half. */
export function writeAtomically(path: string, content: string): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  const fd = openSync(temp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, path);
}
