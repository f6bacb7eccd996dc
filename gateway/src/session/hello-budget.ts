/**
 * How many hellos one client id may send: a token bucket per client id, checked before a
 * hello costs anything (session, AES key, connection id, Opus streams, agent, LiveKit room).
 *
 * A device says hello when the user wakes it, and again when its 10 s wait for the reply
 * times out (firmware retries once or twice), so a genuine device sends a few hellos a
 * minute at most. The default lets 4 through at once (a hello and its retries) and then one
 * every 3 s (20 a minute); one authenticated device that floods hellos gets no more than
 * that, and the hellos over budget are dropped and counted: no session, no reply, the
 * device's current session (if any) untouched.
 *
 * Memory is bounded: at most `maxClients` buckets, least recently seen forgotten first (a
 * forgotten bucket starts full again, so eviction never refuses anyone). Pure: the clock
 * is injected.
 */

export interface HelloBudgetOptions {
  /** Hellos that may arrive at once. */
  readonly burst: number;
  /** Milliseconds for one hello to come back into the budget. */
  readonly refillMs: number;
  /** Most client ids tracked at once. */
  readonly maxClients: number;
}

export const DEFAULT_HELLO_BUDGET: HelloBudgetOptions = { burst: 4, refillMs: 3000, maxClients: 100_000 };

interface Bucket {
  tokens: number;
  at: number;
}

export class HelloBudget {
  readonly #o: HelloBudgetOptions;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  /** `now` returns milliseconds from any monotonic origin. */
  constructor(
    options: HelloBudgetOptions = DEFAULT_HELLO_BUDGET,
    now: () => number = () => performance.now(),
  ) {
    if (!(options.burst >= 1) || !(options.refillMs > 0) || !(options.maxClients >= 1)) {
      throw new RangeError("HelloBudget: burst >= 1, refillMs > 0 and maxClients >= 1 are required");
    }
    this.#o = options;
    this.#now = now;
  }

  /** True if this client id may open a session now (and spends one hello). */
  take(clientId: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(clientId);
    if (bucket) {
      this.#buckets.delete(clientId); // re-inserted below: least recently seen stays first
      const elapsed = now - bucket.at;
      if (elapsed > 0) bucket.tokens = Math.min(this.#o.burst, bucket.tokens + elapsed / this.#o.refillMs);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#o.maxClients) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
      bucket = { tokens: this.#o.burst, at: now };
    }
    this.#buckets.set(clientId, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Client ids tracked now (never above `maxClients`). */
  get size(): number {
    return this.#buckets.size;
  }
}
