import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GroupedReads } from './grouped-reads.js';

/** A store whose statements finish when the test says so, recording what each asked for. */
function controlledStore(values: Map<string, string>) {
  const statements: { keys: readonly string[]; finish: (error?: Error) => void }[] = [];
  const run = <T>(keys: readonly string[], answer: () => T) =>
    new Promise<T>((resolve, reject) => {
      statements.push({ keys, finish: (error) => (error ? reject(error) : resolve(answer())) });
    });
  const reads = new GroupedReads<string>(
    (key) => run([key], () => values.get(key)),
    (keys) => run(keys, () => new Map(keys.flatMap((k) => (values.has(k) ? [[k, values.get(k)!] as const] : [])))),
    3,
  );
  return { reads, statements };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupedReads', () => {
  it('a lone read goes at once; reads asked for meanwhile go together after it, each getting its own value', async () => {
    const values = new Map([
      ['a', 'A'],
      ['b', 'B'],
      ['c', 'C'],
    ]);
    const { reads, statements } = controlledStore(values);
    const first = reads.read('a');
    assert.deepEqual(
      statements.map((s) => s.keys),
      [['a']],
    );
    const later = [reads.read('b'), reads.read('missing'), reads.read('b'), reads.read('c')];
    await tick();
    assert.equal(statements.length, 1, 'nothing else runs while the first statement does');
    values.set('c', 'C2'); // changed before the grouped statement starts: it reads the newer value
    statements[0]!.finish();
    assert.equal(await first, 'A');
    await tick();
    assert.deepEqual(
      statements.map((s) => s.keys),
      [['a'], ['b', 'missing', 'c']],
      'one statement for the waiting keys, each key once',
    );
    statements[1]!.finish();
    assert.deepEqual(await Promise.all(later), ['B', undefined, 'B', 'C2']);
  });

  it('splits a group at maxGroup keys and runs the rest after it', async () => {
    const { reads, statements } = controlledStore(new Map());
    const all = [reads.read('k0'), ...['k1', 'k2', 'k3', 'k4', 'k5'].map((k) => reads.read(k))];
    statements[0]!.finish();
    await tick();
    statements[1]!.finish();
    await tick();
    statements[2]!.finish();
    assert.deepEqual(
      await Promise.all(all),
      Array.from({ length: 6 }, () => undefined),
    );
    assert.deepEqual(
      statements.map((s) => s.keys),
      [['k0'], ['k1', 'k2', 'k3'], ['k4', 'k5']],
    );
  });

  it('a failed statement fails every read of its group, and only those; the next group still runs', async () => {
    const { reads, statements } = controlledStore(new Map([['y', 'Y']]));
    const lone = reads.read('x');
    const grouped = [reads.read('y'), reads.read('z')];
    statements[0]!.finish(new Error('connection lost'));
    await assert.rejects(lone, /connection lost/);
    await tick();
    const afterwards = reads.read('y'); // asked for while the group runs: waits for it
    statements[1]!.finish(new Error('read timeout'));
    await Promise.all(grouped.map((p) => assert.rejects(p, /read timeout/)));
    await tick();
    statements[2]!.finish();
    assert.equal(await afterwards, 'Y');
  });

  it('a store that throws instead of rejecting fails the reads, and later reads still run', async () => {
    let fail = true;
    const reads = new GroupedReads<string>(
      () => {
        if (fail) throw new Error('closed');
        return Promise.resolve('ok');
      },
      () => Promise.resolve(new Map()),
    );
    await assert.rejects(reads.read('a'), /closed/);
    fail = false;
    assert.equal(await reads.read('a'), 'ok');
  });

  it('refuses a group size that is not a positive integer', () => {
    const none = () => Promise.resolve(undefined);
    const noMany = () => Promise.resolve(new Map<string, string>());
    assert.throws(() => new GroupedReads<string>(none, noMany, 0), RangeError);
    assert.throws(() => new GroupedReads<string>(none, noMany, 1.5), RangeError);
  });
});
