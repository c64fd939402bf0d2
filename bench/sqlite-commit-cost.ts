// The fixed cost of one durable commit on this disk: a one-row UPDATE transaction in WAL mode under
// each `synchronous` setting. Explains how much of a sign-in's store transaction is the fsync.
// Run: node --import tsx bench/sqlite-commit-cost.ts [--transactions 2000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { heading, printTable } from './lib/report.js';

const { values } = parseArgs({ options: { transactions: { type: 'string', default: '2000' } } });
const n = Number(values.transactions);
heading(`SQLite commit cost: ${n} one-row UPDATE transactions per setting, WAL mode`);
const rows: string[][] = [];
for (const synchronous of ['FULL', 'NORMAL', 'OFF'] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-commit-'));
  const db = new Database(join(dir, 'bench.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO t VALUES (1, 0);');
  const update = db.prepare('UPDATE t SET v = v + 1 WHERE id = 1');
  const transaction = db.transaction(() => update.run());
  const started = performance.now();
  for (let i = 0; i < n; i++) transaction();
  const micros = ((performance.now() - started) / n) * 1000;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  rows.push([synchronous, micros.toFixed(1)]);
}
printTable('commit cost', ['synchronous', 'µs per transaction'], rows);
