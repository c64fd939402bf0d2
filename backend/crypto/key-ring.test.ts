import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KeyRing } from './key-ring.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('key ring file', () => {
  it('workers opening a fresh data directory together all get the one key that was created, never a half-written file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-ring-'));
    dirs.push(dir);
    const file = join(dir, 'checkpoint-signing-keys.json');
    // Each open creates its key before it writes, so all four find no file and race to create it.
    const rings = await Promise.all([1, 2, 3, 4].map(() => KeyRing.open({ file, clock: () => 1_000 })));
    const kids = new Set(rings.map((r) => r.active.kid));
    assert.equal(kids.size, 1, 'one key for every worker');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { keys: { kid: string }[] };
    assert.deepEqual(
      stored.keys.map((k) => k.kid),
      [...kids],
    );
    assert.deepEqual(readdirSync(dir), ['checkpoint-signing-keys.json'], 'no temporary file left behind');
  });
});
