/**
 * Per-source rate limits for the UDP port, checked before anything else a datagram costs
 * (parsing, session lookup, AES, Opus). Two token buckets, both must allow:
 *
 * - per source IP address (whatever the port): 1,000 packets a second, bursts of 2,000.
 *   One host cannot escape its limit by spreading a flood over many source ports; the
 *   figure leaves room for about 60 talking devices behind one NAT address (a school, an
 *   office) at 17 packets a second each.
 * - per source address and port (one device socket): 100 a second, bursts of 200, six
 *   times what a device sends, so one socket cannot use its whole address's allowance.
 *
 * Pure: the clock is injected.
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

/** Per source address and port (one device socket). */
export const DEFAULT_SOURCE_LIMIT: SourceLimitOptions = {
  ratePerSecond: 100,
  burst: 200,
  maxSources: 10_000,
};

/** Per source IP address, all its ports together. */
export const DEFAULT_ADDRESS_LIMIT: SourceLimitOptions = {
  ratePerSecond: 1000,
  burst: 2000,
  maxSources: 10_000,
};

export interface UdpSourceLimits {
  readonly perSocket: SourceLimitOptions;
  readonly perAddress: SourceLimitOptions;
}

export const DEFAULT_UDP_SOURCE_LIMITS: UdpSourceLimits = {
  perSocket: DEFAULT_SOURCE_LIMIT,
  perAddress: DEFAULT_ADDRESS_LIMIT,
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
    const bucket = this.bucket(address);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /**
   * The address's bucket, brought up to date and made the most recently seen: for a caller
   * that takes its token (`tokens -= 1`) only once another limit has agreed.
   */
  bucket(address: string): { tokens: number } {
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
    return bucket;
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

/** Both limits of the UDP port: the source IP's bucket, then its socket's. */
export class UdpSourceLimiter {
  readonly #address: SourceLimiter;
  readonly #socket: SourceLimiter;

  constructor(limits: UdpSourceLimits = DEFAULT_UDP_SOURCE_LIMITS, now?: () => number) {
    this.#address = new SourceLimiter(limits.perAddress, now);
    this.#socket = new SourceLimiter(limits.perSocket, now);
  }

  /**
   * True if a datagram from `address`:`port` may be processed. A datagram refused by its
   * address's bucket takes no token from its socket's, and one refused by its socket's
   * takes none from its address's: a socket flooding past its own bucket must not empty
   * the bucket the other devices behind its address share.
   */
  allow(address: string, port: number): boolean {
    const shared = this.#address.bucket(address);
    if (shared.tokens < 1) return false;
    if (!this.#socket.allow(`${address}:${port}`)) return false;
    shared.tokens -= 1;
    return true;
  }
}
