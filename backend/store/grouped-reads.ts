/**
 * Statements by key, grouped the way ReplayGuard groups nonce claims (backend/crypto/console-signature.ts):
 * one asked for while no statement of this group is running goes to the store at once, alone, through
 * `one` (a lone request waits for nothing and runs the usual statement); those asked for while one is
 * running wait for it and then go together, `maxGroup` keys to a statement, through `many`. Thousands
 * of consoles reconnecting at once after a failover then cost a few statements instead of one each.
 *
 * A statement never reads an older state than the store had when it was asked for: a grouped
 * statement starts after the call. A key asked for twice while waiting runs once, with the input of
 * the later call (for a write: the newer value wins), and both callers get its result. Every caller
 * of a failed statement gets its error.
 */
export class GroupedStatements<I, V> {
  /** Waiting for the running statement to finish, by key. */
  private waiting = new Map<string, { input: I; settles: ((value: V | undefined | Error) => void)[] }>();
  private running = false;

  constructor(
    private readonly one: (key: string, input: I) => Promise<V | undefined>,
    private readonly many: (entries: ReadonlyMap<string, I>) => Promise<ReadonlyMap<string, V>>,
    private readonly maxGroup = 1_000,
  ) {
    if (!Number.isInteger(maxGroup) || maxGroup < 1) throw new RangeError('maxGroup must be a positive integer');
  }

  run(key: string, input: I): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const settle = (value: V | undefined | Error) => (value instanceof Error ? reject(value) : resolve(value));
      const waiting = this.waiting.get(key);
      if (waiting === undefined) this.waiting.set(key, { input, settles: [settle] });
      else {
        waiting.input = input;
        waiting.settles.push(settle);
      }
      if (!this.running) this.next();
    });
  }

  /** Runs the next group (at most `maxGroup` keys), then the next while some wait. Never rejects. */
  private next(): void {
    if (this.waiting.size === 0) {
      this.running = false;
      return;
    }
    this.running = true;
    const group = new Map<string, { input: I; settles: ((value: V | undefined | Error) => void)[] }>();
    for (const [key, entry] of this.waiting) {
      if (group.size >= this.maxGroup) break;
      group.set(key, entry);
    }
    for (const key of group.keys()) this.waiting.delete(key);
    let done: Promise<ReadonlyMap<string, V | undefined>>;
    try {
      const [only] = group;
      done =
        group.size === 1 && only !== undefined
          ? this.one(only[0], only[1].input).then((value) => new Map([[only[0], value]]))
          : this.many(new Map([...group].map(([key, entry]) => [key, entry.input])));
    } catch (error) {
      done = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    done
      .then(
        (results) => {
          for (const [key, { settles }] of group) for (const settle of settles) settle(results.get(key));
        },
        (error: unknown) => {
          const failure = error instanceof Error ? error : new Error(String(error));
          for (const { settles } of group.values()) for (const settle of settles) settle(failure);
        },
      )
      .finally(() => this.next())
      .catch(() => undefined);
  }
}

/** Reads by key, grouped under load (`GroupedStatements`): `readMany` returns the keys that exist. */
export class GroupedReads<V> {
  private readonly statements: GroupedStatements<undefined, V>;

  constructor(
    readOne: (key: string) => Promise<V | undefined>,
    readMany: (keys: readonly string[]) => Promise<ReadonlyMap<string, V>>,
    maxGroup?: number,
  ) {
    this.statements = new GroupedStatements(
      (key) => readOne(key),
      (entries) => readMany([...entries.keys()]),
      maxGroup,
    );
  }

  read(key: string): Promise<V | undefined> {
    return this.statements.run(key, undefined);
  }
}
