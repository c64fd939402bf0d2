/**
 * Reads by key, grouped the way ReplayGuard groups nonce claims (backend/crypto/console-signature.ts):
 * a read asked for while no statement of this reader is running goes to the store at once, alone,
 * through `readOne` (a lone request waits for nothing and runs the usual statement); the reads asked
 * for while one is running wait for it and then go together, `maxGroup` keys to a statement, through
 * `readMany`. Thousands of consoles reconnecting at once after a failover then cost a few statements
 * instead of one each.
 *
 * A read never returns an older state than the store had when it was asked for: a grouped read's
 * statement starts after the call. Every caller of a failed statement gets its error.
 */
export class GroupedReads<V> {
  /** Reads waiting for the running statement to finish, by key (one statement reads a key once). */
  private waiting = new Map<string, ((value: V | undefined | Error) => void)[]>();
  private running = false;

  constructor(
    private readonly readOne: (key: string) => Promise<V | undefined>,
    private readonly readMany: (keys: readonly string[]) => Promise<Map<string, V>>,
    private readonly maxGroup = 1_000,
  ) {
    if (!Number.isInteger(maxGroup) || maxGroup < 1) throw new RangeError('maxGroup must be a positive integer');
  }

  read(key: string): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const settle = (value: V | undefined | Error) => (value instanceof Error ? reject(value) : resolve(value));
      const waiting = this.waiting.get(key);
      if (waiting !== undefined) waiting.push(settle);
      else this.waiting.set(key, [settle]);
      if (!this.running) this.next();
    });
  }

  /** Runs the next group (at most `maxGroup` keys), then the next while reads are waiting. Never rejects. */
  private next(): void {
    if (this.waiting.size === 0) {
      this.running = false;
      return;
    }
    this.running = true;
    const group = new Map<string, ((value: V | undefined | Error) => void)[]>();
    for (const [key, settles] of this.waiting) {
      if (group.size >= this.maxGroup) break;
      group.set(key, settles);
    }
    for (const key of group.keys()) this.waiting.delete(key);
    const keys = [...group.keys()];
    let done: Promise<Map<string, V> | V | undefined>;
    try {
      done = keys.length === 1 ? this.readOne(keys[0]!) : this.readMany(keys);
    } catch (error) {
      done = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    done
      .then(
        (result) => {
          for (const [key, settles] of group) {
            const value = keys.length === 1 ? (result as V | undefined) : (result as Map<string, V>).get(key);
            for (const settle of settles) settle(value);
          }
        },
        (error: unknown) => {
          const failure = error instanceof Error ? error : new Error(String(error));
          for (const settles of group.values()) for (const settle of settles) settle(failure);
        },
      )
      .finally(() => this.next())
      .catch(() => undefined);
  }
}
