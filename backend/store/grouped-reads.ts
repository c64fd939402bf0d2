/**
 * Statements by key, grouped the way ReplayGuard groups nonce claims (backend/crypto/console-signature.ts):
 * one asked for while fewer than `inFlight` statements of this kind are running goes to the store at
 * once, alone, through `one` (a lone request waits for nothing and runs the usual statement); those
 * asked for while `inFlight` are running wait for one of them and then go together, `maxGroup` keys to
 * a statement, through `many`. Thousands of consoles reconnecting at once after a failover then cost a
 * few statements instead of one each. Two in flight by default: one statement stalled on a bad
 * connection (until the store's read timeout ends it) does not hold up every request of its kind.
 *
 * A statement never reads an older state than the store had when it was asked for: a grouped
 * statement starts after the call. A key asked for twice while waiting runs once, with the input of
 * the later call (for a write: the newer value wins), and both callers get its result; a key never
 * runs in two statements at once, so writes of one key land in the order asked. Every caller of a
 * failed statement gets its error.
 */
export class GroupedStatements<I, V> {
  /** Waiting for the running statement to finish, by key. */
  private waiting = new Map<string, { input: I; settles: ((value: V | undefined | Error) => void)[] }>();
  private running = 0;
  /** Keys of the statements running: a key waits until its running statement is done (writes stay in order). */
  private readonly busy = new Set<string>();

  constructor(
    private readonly one: (key: string, input: I) => Promise<V | undefined>,
    private readonly many: (entries: ReadonlyMap<string, I>) => Promise<ReadonlyMap<string, V>>,
    private readonly maxGroup = 1_000,
    private readonly inFlight = 2,
  ) {
    if (!Number.isInteger(maxGroup) || maxGroup < 1) throw new RangeError('maxGroup must be a positive integer');
    if (!Number.isInteger(inFlight) || inFlight < 1) throw new RangeError('inFlight must be a positive integer');
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
      if (this.running < this.inFlight) this.next();
    });
  }

  /** Runs the next group (at most `maxGroup` keys), then the next while some wait. Never rejects. */
  private next(): void {
    const group = new Map<string, { input: I; settles: ((value: V | undefined | Error) => void)[] }>();
    for (const [key, entry] of this.waiting) {
      if (group.size >= this.maxGroup) break;
      if (!this.busy.has(key)) group.set(key, entry);
    }
    if (group.size === 0) return;
    this.running++;
    for (const key of group.keys()) {
      this.waiting.delete(key);
      this.busy.add(key);
    }
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
    const fail = (error: unknown) => {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const { settles } of group.values()) for (const settle of settles) settle(failure);
    };
    done
      .then((results) => {
        // Looked up before anyone is settled: a result that is not a map fails the group, never strands it.
        const values = [...group.keys()].map((key) => results.get(key));
        let i = 0;
        for (const { settles } of group.values()) {
          const value = values[i++];
          for (const settle of settles) settle(value);
        }
      }, fail)
      .catch(fail)
      .finally(() => {
        this.running--;
        for (const key of group.keys()) this.busy.delete(key);
        // Two may start: the slot just freed, and the one a busy key held back may have wanted.
        while (this.running < this.inFlight && this.waiting.size > 0) {
          const before = this.running;
          this.next();
          if (this.running === before) break;
        }
      })
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
    inFlight?: number,
  ) {
    this.statements = new GroupedStatements(
      (key) => readOne(key),
      (entries) => readMany([...entries.keys()]),
      maxGroup,
      inFlight,
    );
  }

  read(key: string): Promise<V | undefined> {
    return this.statements.run(key, undefined);
  }
}
