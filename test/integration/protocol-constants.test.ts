import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLOSE_CODES } from '../../shared/protocol.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** The protocol's numbers, declared in shared/protocol.ts and shared/dev-bridge-protocol.ts only. */
const PROTOCOL_CONSTANTS = [
  'PROTOCOL_VERSION',
  'MAX_MESSAGE_BYTES',
  'MAX_EVENTS_PER_BATCH',
  'MAX_BATCHES_IN_FLIGHT',
  'CLOSE_CODES',
  'DEV_BRIDGE_MAX_PAYLOAD',
  'DEV_BRIDGE_CLOSE',
];

test('protocol constants are declared in shared/ only, never again in main/ or backend/', () => {
  const declared = new RegExp(`\\bconst (${PROTOCOL_CONSTANTS.join('|')})\\b`);
  const offenders = [...sources('main'), ...sources('backend')]
    .filter((file) => declared.test(readFileSync(file, 'utf8')))
    .map((file) => relative(ROOT, file));
  assert.deepEqual(offenders, []);
});

test('close codes are named, never written as numbers, in main/ and backend/', () => {
  const codes = new Set<number>(Object.values(CLOSE_CODES));
  const offenders: string[] = [];
  for (const file of [...sources('main'), ...sources('backend')]) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:close\(|terminate\(|closed\([^,]*,|code\s*[!=]==?)\s*(\d{4})\b/g)) {
      if (codes.has(Number(m[1]))) offenders.push(`${relative(ROOT, file)}: ${m[0]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
