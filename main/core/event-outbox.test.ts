import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs, {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { GENESIS_HASH, type EventDraft } from '../../shared/events.js';
import { EventOutbox, SEGMENT_EVENTS, hashEvent } from './event-outbox.js';
import { tempDir } from '../../test/helpers/temp-dir.js';

const draft = (n = 0): EventDraft => ({
  type: 'session-locked',
  subject: { session: `ses_${n}` },
  outcome: 'info',
  reasons: ['idle'],
});
const fresh = () => tempDir('baton-outbox-');

function assertChain(events: { seq: number; prevHash: string }[], from = GENESIS_HASH): void {
  let prev = from;
  for (const e of events) {
    assert.equal(e.prevHash, prev, `event ${e.seq} does not chain`);
    prev = hashEvent(e as Parameters<typeof hashEvent>[0]);
  }
}

describe('EventOutbox', () => {
  it('never writes through a link planted in its directory, and keeps the directory private', async () => {
    const dir = tempDir('baton-outbox-');
    const journal = join(dir, 'journal');
    mkdirSync(journal, { mode: 0o755 });
    chmodSync(journal, 0o755);
    const target = join(dir, 'elsewhere.txt');
    writeFileSync(target, 'untouched\n');
    symlinkSync(target, join(journal, 'segment-0000000000000001.jsonl'));
    const { outbox } = EventOutbox.open(journal, { max: 10 });
    assert.equal(statSync(journal).mode & 0o777, 0o700);
    await assert.rejects(
      outbox.emit({ type: 'agent-online', subject: {}, outcome: 'info', reasons: ['started'] }),
      (error: unknown) => error instanceof BatonError && error.code === 'INTERNAL',
    );
    assert.equal(readFileSync(target, 'utf8'), 'untouched\n');
  });

  it('refuses an event that fails its schema, and the events around it are numbered and chained without a gap', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 100 });
    const before = outbox.emit(draft(1));
    const bad = outbox.emit({ ...draft(2), reasons: 'idle' } as unknown as EventDraft);
    const after = outbox.emit(draft(3));
    await assert.rejects(bad, (e: unknown) => e instanceof BatonError && e.code === 'EVENT_SCHEMA_INVALID');
    const events = [await before, await after];
    assert.deepEqual(
      events.map((e) => [e.seq, e.subject.session]),
      [
        [1, 'ses_1'],
        [2, 'ses_3'],
      ],
    );
    assertChain(events);
    await outbox.close();
    const { outbox: again, report } = EventOutbox.open(dir, { max: 100 });
    assert.equal(report.recovered, 2);
    assert.deepEqual(again.pending(10), events);
    await again.close();
  });

  it('numbers and chains events and finds them all again after a restart', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 10_000 });
    const emitted = await Promise.all(Array.from({ length: 300 }, (_, i) => outbox.emit(draft(i))));
    assert.deepEqual(
      emitted.map((e) => e.seq),
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    assertChain(emitted);
    await outbox.close();

    const { outbox: again, report } = EventOutbox.open(dir, { max: 10_000 });
    assert.equal(report.recovered, 300);
    assert.deepEqual(again.pending(1000), emitted);
    const next = await again.emit(draft());
    assert.equal(next.seq, 301);
    assert.equal(next.prevHash, hashEvent(emitted.at(-1)!));
    await again.close();
  });

  it('drops only acknowledged events, compacts whole segments and remembers the acknowledgement', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 100_000 });
    const total = SEGMENT_EVENTS * 2 + 10;
    await Promise.all(Array.from({ length: total }, (_, i) => outbox.emit(draft(i))));
    outbox.acknowledge(SEGMENT_EVENTS + 5);
    assert.equal(outbox.status.pending, total - SEGMENT_EVENTS - 5);
    assert.equal(outbox.pending(1)[0]?.seq, SEGMENT_EVENTS + 6);
    await outbox.close(); // close resolves once the writer has done all of it
    assert.equal(
      readdirSync(dir).filter((f) => f.startsWith('segment-')).length,
      2,
      'the first, fully acknowledged segment is gone',
    );
    const { outbox: again, report } = EventOutbox.open(dir, { max: 100_000 });
    assert.equal(report.recovered, total - SEGMENT_EVENTS - 5);
    assert.equal(again.status.ackedSeq, SEGMENT_EVENTS + 5);
    again.acknowledge(total);
    await again.close();
    const { outbox: empty } = EventOutbox.open(dir, { max: 100_000 });
    assert.equal(empty.status.pending, 0);
    const next = await empty.emit(draft());
    assert.equal(next.seq, total + 1, 'numbering continues after everything was acknowledged');
    await empty.close();
  });

  it('drops a torn last line left by a crash mid-write, and keeps every whole event', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 1000 });
    const emitted = await Promise.all(Array.from({ length: 5 }, (_, i) => outbox.emit(draft(i))));
    await outbox.close();
    const segment = join(dir, readdirSync(dir).find((f) => f.startsWith('segment-'))!);
    appendFileSync(segment, '{"id":"7d8c0f7e-');
    const { outbox: again, report } = EventOutbox.open(dir, { max: 1000 });
    assert.equal(report.tornTail, true);
    assert.deepEqual(again.pending(10), emitted);
    assert.ok(readFileSync(segment, 'utf8').endsWith('\n'), 'the torn bytes were cut off');
    assert.equal((await again.emit(draft())).seq, 6);
    await again.close();
  });

  it('reports a corrupted line with its file and line, quarantines a copy, and keeps the events around it', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 1000 });
    await Promise.all(Array.from({ length: 5 }, (_, i) => outbox.emit(draft(i))));
    await outbox.close();
    const file = readdirSync(dir).find((f) => f.startsWith('segment-'))!;
    const lines = readFileSync(join(dir, file), 'utf8').split('\n');
    lines[2] = '{"this is":"not an event"}';
    writeFileSync(join(dir, file), lines.join('\n'));
    const { outbox: again, report } = EventOutbox.open(dir, { max: 1000 });
    assert.equal(report.corrupt.length, 1);
    assert.equal(report.corrupt[0]?.file, file);
    assert.equal(report.corrupt[0]?.line, 3);
    assert.match(report.corrupt[0]?.reason ?? '', /not an assurance event/);
    assert.deepEqual(
      again.pending(10).map((e) => e.seq),
      [1, 2, 4, 5],
      'the unreadable event shows as a gap, nothing else is lost',
    );
    assert.equal(readdirSync(join(dir, 'quarantine')).length, 1);
    assert.equal((await again.emit(draft())).seq, 6);
    await again.close();
  });

  it('says when it is nearly full and refuses new events at the cap instead of dropping any', async () => {
    const { outbox } = EventOutbox.open(fresh(), { max: 1000 });
    await Promise.all(Array.from({ length: 899 }, () => outbox.emit(draft())));
    assert.equal(outbox.status.nearFull, false);
    await outbox.emit(draft());
    assert.equal(outbox.status.nearFull, true);
    await Promise.all(Array.from({ length: 100 }, () => outbox.emit(draft())));
    await assert.rejects(outbox.emit(draft()), (e: unknown) => e instanceof BatonError && e.code === 'OUTBOX_FULL');
    assert.equal(outbox.status.pending, 1000);
    outbox.acknowledge(500);
    assert.equal((await outbox.emit(draft())).seq, 1001);
    await outbox.close();
  });

  it('never writes or fsyncs synchronously on the caller’s thread, and each event is on disk when emit resolves', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 10_000 });
    const onCallerThread: string[] = [];
    const { writeSync, fsyncSync, fdatasyncSync } = fs;
    fs.writeSync = ((...args: Parameters<typeof writeSync>) => {
      onCallerThread.push('writeSync');
      return writeSync(...args);
    }) as typeof writeSync;
    fs.fsyncSync = (fd) => {
      onCallerThread.push('fsyncSync');
      fsyncSync(fd);
    };
    fs.fdatasyncSync = (fd) => {
      onCallerThread.push('fdatasyncSync');
      fdatasyncSync(fd);
    };
    syncBuiltinESMExports();
    try {
      const first = await outbox.emit(draft(1));
      const segment = join(dir, readdirSync(dir).find((f) => f.startsWith('segment-'))!);
      assert.equal(
        readFileSync(segment, 'utf8'),
        `${JSON.stringify(first)}\n`,
        'the line is in the file when emit resolves',
      );
      await Promise.all(Array.from({ length: SEGMENT_EVENTS + 20 }, (_, i) => outbox.emit(draft(i))));
      outbox.acknowledge(SEGMENT_EVENTS + 1);
      await outbox.close();
    } finally {
      Object.assign(fs, { writeSync, fsyncSync, fdatasyncSync });
      syncBuiltinESMExports();
    }
    assert.deepEqual(onCallerThread, [], 'no write or fsync ran on the caller’s thread');
    const { outbox: again, report } = EventOutbox.open(dir, { max: 10_000 });
    assert.equal(report.recovered, 20);
    assert.equal(again.status.ackedSeq, SEGMENT_EVENTS + 1);
    await again.close();
  });

  it('counts events on their way to disk as pending, and close waits for them: a reopened journal has them all', async () => {
    const dir = fresh();
    const { outbox } = EventOutbox.open(dir, { max: 100 });
    const emitting = Array.from({ length: 60 }, (_, i) => outbox.emit(draft(i)));
    assert.equal(outbox.status.pending, 60);
    await new Promise((resolve) => setImmediate(resolve)); // the first write is handed to the writer thread
    assert.equal(outbox.status.pending, 60, 'an event being written still counts against the cap');
    emitting.push(...Array.from({ length: 40 }, (_, i) => outbox.emit(draft(i))));
    await assert.rejects(outbox.emit(draft()), (e: unknown) => e instanceof BatonError && e.code === 'OUTBOX_FULL');
    await outbox.close();
    const { outbox: again, report } = EventOutbox.open(dir, { max: 100 });
    assert.equal(report.recovered, 100, 'everything emitted before close is in the journal');
    const emitted = await Promise.all(emitting);
    assert.deepEqual(again.pending(100), emitted);
    assertChain(emitted);
    await assert.rejects(outbox.emit(draft()), (e: unknown) => e instanceof BatonError && e.code === 'INTERNAL');
    await again.close();
  });

  it('loses no emitted event when the process is killed with SIGKILL mid-stream', async () => {
    const dir = fresh();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, '..', '..', 'test', 'helpers', 'outbox-writer.ts'), dir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let confirmed = 0;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        confirmed = Math.max(confirmed, Number(line));
        if (confirmed >= 3000) resolve();
      });
    });
    child.kill('SIGKILL');
    await exited;
    const { outbox, report } = EventOutbox.open(dir, { max: 1_000_000 });
    const events = outbox.pending(1_000_000);
    assert.ok(events.length >= confirmed, `${events.length} recovered < ${confirmed} confirmed`);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: events.length }, (_, i) => i + 1),
      'no gap, no duplicate',
    );
    assertChain(events);
    assert.deepEqual(report.corrupt, []);
    assert.ok(existsSync(dir));
    await outbox.close();
  });
});
