/**
 * Per-source rate limit for the UDP port: a token bucket per source address and port (one
 * device socket), checked before anything else a datagram costs (parsing, session lookup,
 * AES, Opus).
 *
 * A device sends about 17 packets a second (60 ms frames) from one socket; the default
 * allows 100 a second with bursts of 200. Keyed by address *and port*, so any number of
 * devices behind one NAT address (a school, an office) each keep their own bucket, while
 * one socket flooding the port is cut to 100 a second. Pure: the clock is injected.
 *
 * Memory is bounded whatever the traffic: at most `maxSources` buckets. The map is kept in
 * least-recently-seen order (a hit moves its entry to the end), and a new address beyond
 * the bound evicts the least recently seen one. Evicting only ever forgets a bucket, which
 * then starts full again: a flood of spoofed sources can make the limiter forget, never
 * make it refuse a legitimate device, nor grow.
 */

export interface SourceLimitOptions {
  /** Tokens (packets) added per second. */
  readonly ratePerSecond: number;
  /** Bucket size: the largest burst one address may send at once. */
  readonly burst: number;
  /** Most addresses tracked at once. */
  readonly maxSources: number;
}

export const DEFAULT_SOURCE_LIMIT: SourceLimitOptions = {
  ratePerSecond: 100,
  burst: 200,
  maxSources: 10_000,
};

interface Bucket {
  tokens: number;
  /** Clock value (ms) when `tokens` was last brought up to date. */
  at: number;
}

export class SourceLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #evictions = 0;

  /** `now` returns milliseconds from any monotonic origin. */
  constructor(
    options: SourceLimitOptions = DEFAULT_SOURCE_LIMIT,
    now: () => number = () => performance.now(),
  ) {
    if (!(options.ratePerSecond > 0) || !(options.burst >= 1) || !(options.maxSources >= 1)) {
      throw new RangeError("SourceLimiter: ratePerSecond > 0, burst >= 1 and maxSources >= 1 are required");
    }
    this.#rate = options.ratePerSecond / 1000;
    this.#burst = options.burst;
    this.#max = Math.floor(options.maxSources);
    this.#now = now;
  }

  /** True if a packet from `address` may be processed (and takes its token). */
  allow(address: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(address);
    if (bucket) {
      // Keep the map in least-recently-seen order.
      this.#buckets.delete(address);
      const elapsed = now - bucket.at;
      if (elapsed > 0) bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#rate);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#max) {
        const oldest = this.#buckets.keys().next().value as string;
        this.#buckets.delete(oldest);
        this.#evictions++;
      }
      bucket = { tokens: this.#burst, at: now };
    }
    this.#buckets.set(address, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Addresses tracked now (never above `maxSources`). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Buckets forgotten to stay within `maxSources`. */
  get evictions(): number {
    return this.#evictions;
  }
}
