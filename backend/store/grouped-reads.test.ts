import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GroupedReads, GroupedStatements } from './grouped-reads.js';

/** A store whose statements finish when the test says so, recording what each asked for. */
function controlledStore(values: Map<string, string>, inFlight = 1) {
  const statements: { keys: readonly string[]; finish: (error?: Error) => void }[] = [];
  const run = <T>(keys: readonly string[], answer: () => T) =>
    new Promise<T>((resolve, reject) => {
      statements.push({ keys, finish: (error) => (error ? reject(error) : resolve(answer())) });
    });
  const reads = new GroupedReads<string>(
    (key) => run([key], () => values.get(key)),
    (keys) => run(keys, () => new Map(keys.flatMap((k) => (values.has(k) ? [[k, values.get(k)!] as const] : [])))),
    3,
    inFlight,
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

  it('with two in flight, a stalled statement does not hold up the others', async () => {
    const { reads, statements } = controlledStore(
      new Map([
        ['b', 'B'],
        ['c', 'C'],
        ['d', 'D'],
      ]),
      2,
    );
    const stalled = reads.read('a');
    const b = reads.read('b');
    const later = [reads.read('c'), reads.read('d')];
    assert.deepEqual(
      statements.map((s) => s.keys),
      [['a'], ['b']],
      'the second goes at once, alone',
    );
    statements[1]!.finish();
    assert.equal(await b, 'B');
    await tick();
    assert.deepEqual(statements[2]?.keys, ['c', 'd'], 'the waiting ones go together while the first is stalled');
    statements[2]!.finish();
    assert.deepEqual(await Promise.all(later), ['C', 'D']);
    statements[0]!.finish(new Error('read timeout'));
    await assert.rejects(stalled, /read timeout/);
  });

  it('writes of one key never run at once, and the newest waiting value is the one written', async () => {
    const written: string[] = [];
    const pending: (() => void)[] = [];
    const write = (value: string) =>
      new Promise<undefined>((resolve) =>
        pending.push(() => {
          written.push(value);
          resolve(undefined);
        }),
      );
    const writes = new GroupedStatements<string, undefined>(
      (_key, value) => write(value),
      async (entries) => {
        for (const value of entries.values()) await write(value);
        return new Map();
      },
      10,
      2,
    );
    const first = writes.run('console-1', 'v1');
    const second = writes.run('console-1', 'v2'); // a slot is free, but console-1 is being written
    const third = writes.run('console-1', 'v3');
    await tick();
    assert.equal(pending.length, 1, 'one statement for console-1 at a time');
    pending.shift()!();
    await first;
    await tick();
    assert.equal(pending.length, 1);
    pending.shift()!();
    await Promise.all([second, third]);
    assert.deepEqual(written, ['v1', 'v3']);
  });

  it('a grouped statement that answers something else than a map fails its reads instead of stranding them', async () => {
    const reads = new GroupedReads<string>(
      () => new Promise((resolve) => setImmediate(() => resolve('one'))),
      () => Promise.resolve(undefined as unknown as Map<string, string>),
      10,
      1,
    );
    const lone = reads.read('a');
    const grouped = [reads.read('b'), reads.read('c'), reads.read('d')];
    assert.equal(await lone, 'one');
    await Promise.all(grouped.map((p) => assert.rejects(p, TypeError)));
  });

  it('refuses a group size that is not a positive integer', () => {
    const none = () => Promise.resolve(undefined);
    const noMany = () => Promise.resolve(new Map<string, string>());
    assert.throws(() => new GroupedReads<string>(none, noMany, 0), RangeError);
    assert.throws(() => new GroupedReads<string>(none, noMany, 1.5), RangeError);
    assert.throws(() => new GroupedReads<string>(none, noMany, 10, 0), RangeError);
  });
});
