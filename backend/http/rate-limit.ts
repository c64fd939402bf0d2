/**
 * Token buckets per key (a client address): each key may spend `capacity` requests at once and
 * regains `refillPerMinute` a minute. The table holds at most `maxKeys` keys; past that the least
 * recently seen key is forgotten (it starts again with a full bucket: forgetting weakens the limit
 * for that key, it never refuses anyone else).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly options: {
      capacity: number;
      refillPerMinute: number;
      maxKeys: number;
      clock: () => number;
    },
  ) {}

  /** Spends one token of `key`: `0` when allowed, else the milliseconds until one is back. */
  take(key: string): number {
    const now = this.options.clock();
    const { capacity, refillPerMinute } = this.options;
    const bucket = this.buckets.get(key);
    let tokens = capacity;
    if (bucket !== undefined) {
      tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) * refillPerMinute) / 60_000);
      this.buckets.delete(key); // re-inserted below: the map stays in least-recently-seen order
    }
    const allowed = tokens >= 1;
    this.buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: now });
    if (this.buckets.size > this.options.maxKeys) this.forgetOldest();
    return allowed ? 0 : Math.ceil(((1 - tokens) * 60_000) / refillPerMinute);
  }

  get size(): number {
    return this.buckets.size;
  }

  private forgetOldest(): void {
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (this.buckets.size <= this.options.maxKeys) return;
    }
  }
}
