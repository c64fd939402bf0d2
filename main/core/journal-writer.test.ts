import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JournalWriter } from './journal-writer.js';
import { tempDir } from '../../test/helpers/temp-dir.js';

const SEGMENT = /^segment-(\d{16})\.jsonl$/;
const name = (start: number) => `segment-${String(start).padStart(16, '0')}.jsonl`;
const fresh = () => tempDir('baton-writer-');

describe('JournalWriter', () => {
  it('carries out requests in the order they were made, each on disk when its promise resolves', async () => {
    const dir = fresh();
    const writer = JournalWriter.start(dir, { segmentPattern: SEGMENT, segmentEvents: 2 });
    const seen: string[] = [];
    const requests = [
      writer
        .append([{ file: name(1), text: 'a\nb\n' }])
        .then(() => seen.push(readFileSync(join(dir, name(1)), 'utf8'))),
      writer.append([
        { file: name(1), text: '' },
        { file: name(3), text: 'c\n' },
      ]),
      writer.acknowledge({ content: '2\n', ackedSeq: 2, headStart: 3 }),
      writer.append([{ file: name(3), text: 'd\n' }]),
    ];
    await Promise.all(requests);
    assert.deepEqual(seen, ['a\nb\n']);
    assert.deepEqual(readdirSync(dir).sort(), ['acked', name(3)], 'segment 1 was wholly acknowledged');
    assert.equal(readFileSync(join(dir, name(3)), 'utf8'), 'c\nd\n');
    assert.equal(readFileSync(join(dir, 'acked'), 'utf8'), '2\n');
    await writer.close();
  });

  it('a failed request rejects with the system’s code, and the next one is still carried out', async () => {
    const dir = fresh();
    mkdirSync(join(dir, name(1))); // a directory where the segment should be: opening it for writing fails
    const writer = JournalWriter.start(dir, { segmentPattern: SEGMENT, segmentEvents: 2 });
    const failed = writer.append([{ file: name(1), text: 'lost\n' }]);
    const next = writer.append([{ file: name(3), text: 'kept\n' }]);
    await assert.rejects(failed, (error: NodeJS.ErrnoException) => error.code === 'EISDIR');
    await next;
    assert.equal(readFileSync(join(dir, name(3)), 'utf8'), 'kept\n');
    await writer.close();
  });

  it('close resolves once everything asked for is on disk, and refuses what is asked after it', async () => {
    const dir = fresh();
    const writer = JournalWriter.start(dir, { segmentPattern: SEGMENT, segmentEvents: 1000 });
    const lines = Array.from({ length: 200 }, (_, i) => `${i}\n`);
    const written = lines.map((text) => writer.append([{ file: name(1), text }]));
    await writer.close();
    assert.equal(readFileSync(join(dir, name(1)), 'utf8'), lines.join(''), 'every append is in the file, in order');
    await Promise.all(written);
    await assert.rejects(writer.append([{ file: name(1), text: 'late\n' }]), /closed/);
    await assert.rejects(writer.acknowledge({ content: '1\n', ackedSeq: 1, headStart: 1 }), /closed/);
    assert.equal(existsSync(join(dir, 'acked')), false);
    assert.equal(writer.close(), writer.close(), 'closing twice is the same close');
  });
});
