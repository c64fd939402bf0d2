import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

/** Issue 11: the agent in parts a newcomer can own — no file in main/ is over this many lines. */
const MAX_LINES = 400;
const root = join(import.meta.dirname, '..', '..');

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (/\.(ts|tsx|js|mjs|cjs)$/.test(entry.name)) yield path;
  }
}

describe('the agent’s files', () => {
  it(`none in main/ is over ${MAX_LINES} lines`, () => {
    const counted = [...files(join(root, 'main'))].map((path) => ({
      file: relative(root, path),
      lines: readFileSync(path, 'utf8').split('\n').length - 1,
    }));
    assert.ok(counted.length > 50, `only ${counted.length} files found under main/`);
    const over = counted.filter((f) => f.lines > MAX_LINES).map((f) => `${f.file} (${f.lines})`);
    assert.deepEqual(over, [], `split these files: ${over.join(', ')}`);
  });
});
