/**
 * Quantiles of a sliding time window, at a fixed cost per observation: the replacement for
 * prom-client's `Summary`, whose five t-digests per metric cost the main thread several
 * percent of its CPU when fed once per datagram (see `tools/bench.ts`).
 *
 * Values are counted in log-spaced buckets (the DDSketch layout): bucket `i` holds
 * `[MIN·γ^i, MIN·γ^(i+1))` with `γ = (1 + α) / (1 − α)`, and reads back as
 * `MIN·γ^i·(1 + α)`. Every value in a bucket is then within a relative error `α` of what
 * the bucket reads back as: `(1 + α) − 1 = α` at the low end, `1 − (1 + α)/γ = α` at the
 * high end. With `α = 0.01` (`γ ≈ 1.0202`, buckets 2 % apart) the bound is exactly:
 *
 *   |quantile(q) − x| ≤ 1 % · x, x = the k-th smallest value in the window, k = max(1, ⌈q·n⌉)
 *
 * for values in [MIN, MAX] (plus float rounding at bucket edges, ~1e-12). Values below
 * MIN (0 included) count in the first bucket and read back as ~MIN; values above MAX in
 * the last one and read back as ~MAX. Negative and non-finite values count nothing.
 *
 * The window is `slots` age slots of `slotMs` each (5 × 12 s by default, what the gateway's
 * summaries used): a value counts in the slot of its time; a slot is emptied when the clock
 * comes back round to it, lazily, on the next `observe` or read. A read merges every live
 * slot, so it covers the last (slots − 1)·slotMs to slots·slotMs (48 to 60 s by default).
 * `sum` and `count` never reset (Prometheus' `_sum` and `_count` are cumulative).
 *
 * No I/O and no timers: the clock is passed in, so tests move time without waiting.
 */

/** Smallest value with its own bucket: 1 µs, in seconds. */
export const DEFAULT_MIN = 1e-6;
/** Largest value with its own bucket: 100 s, in seconds. */
export const DEFAULT_MAX = 100;
/** The relative error bound of a quantile (see above). */
export const DEFAULT_RELATIVE_ERROR = 0.01;

export interface WindowedQuantilesOptions {
  /** Number of age slots in the window (default 5). */
  readonly slots?: number;
  /** Length of one slot, ms (default 12,000: with 5 slots, a 60 s window). */
  readonly slotMs?: number;
  /** Lower end of the bucketed range (default 1e-6). */
  readonly min?: number;
  /** Upper end of the bucketed range (default 100). */
  readonly max?: number;
  /** Relative error bound α, 0 < α < 1 (default 0.01). */
  readonly relativeError?: number;
  /**
   * The clock, ms. Default `performance.now`: monotonic, so a wall-clock step (NTP) neither
   * empties the window early nor holds old values in it.
   */
  readonly now?: () => number;
}

export class WindowedQuantiles {
  readonly relativeError: number;
  readonly min: number;
  readonly max: number;
  readonly #slotMs: number;
  readonly #slotCount: number;
  readonly #bucketCount: number;
  /** Bucket index from a value: ⌊ln(v / min) · #invLnGamma⌋. */
  readonly #invLnGamma: number;
  readonly #lnMin: number;
  /** What each bucket reads back as. */
  readonly #values: Float64Array;
  /** `slots` rows of `#bucketCount` counts, one row per age slot, in one array. */
  readonly #counts: Float64Array;
  /** Values counted in each slot, to skip empty ones and to know the window's size. */
  readonly #slotTotals: Float64Array;
  readonly #now: () => number;
  /** The slot new values go to, and the time it started. */
  #current = 0;
  #currentStart: number;
  #sum = 0;
  #count = 0;

  constructor(options: WindowedQuantilesOptions = {}) {
    const slots = options.slots ?? 5;
    const slotMs = options.slotMs ?? 12_000;
    const min = options.min ?? DEFAULT_MIN;
    const max = options.max ?? DEFAULT_MAX;
    const alpha = options.relativeError ?? DEFAULT_RELATIVE_ERROR;
    if (!Number.isInteger(slots) || slots < 1)
      throw new RangeError(`slots must be a positive integer: ${slots}`);
    if (!(slotMs > 0)) throw new RangeError(`slotMs must be positive: ${slotMs}`);
    if (!(min > 0 && max > min && Number.isFinite(max)))
      throw new RangeError(`need 0 < min < max: ${min}, ${max}`);
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`relativeError must be in (0, 1): ${alpha}`);
    this.relativeError = alpha;
    this.min = min;
    this.max = max;
    this.#slotMs = slotMs;
    this.#slotCount = slots;
    const lnGamma = Math.log((1 + alpha) / (1 - alpha));
    this.#invLnGamma = 1 / lnGamma;
    this.#lnMin = Math.log(min);
    // Enough buckets that the last one's upper edge reaches max.
    this.#bucketCount = Math.ceil(Math.log(max / min) / lnGamma);
    this.#values = new Float64Array(this.#bucketCount);
    for (let i = 0; i < this.#bucketCount; i++)
      this.#values[i] = Math.exp(this.#lnMin + i * lnGamma) * (1 + alpha);
    this.#counts = new Float64Array(slots * this.#bucketCount);
    this.#slotTotals = new Float64Array(slots);
    this.#now = options.now ?? (() => performance.now());
    this.#currentStart = this.#now();
  }

  /** Counts one value (seconds, by the gateway's use). Negative, NaN or infinite: ignored. */
  observe(v: number): void {
    // One comparison rejects NaN, negatives and -Infinity; +Infinity is the other case.
    if (!(v >= 0) || v === Number.POSITIVE_INFINITY) return;
    this.#rotate();
    let i = v > 0 ? Math.floor((Math.log(v) - this.#lnMin) * this.#invLnGamma) : 0;
    if (i < 0) i = 0;
    else if (i >= this.#bucketCount) i = this.#bucketCount - 1;
    // In range by construction (i clamped above, #current < slots).
    this.#counts[this.#current * this.#bucketCount + i]!++;
    this.#slotTotals[this.#current]!++;
    this.#sum += v;
    this.#count++;
  }

  /** The sum of every value observed since construction (or `reset`), window or not. */
  get sum(): number {
    return this.#sum;
  }

  /** How many values were observed since construction (or `reset`), window or not. */
  get count(): number {
    return this.#count;
  }

  /** How many values the window holds now. */
  windowCount(): number {
    this.#rotate();
    return this.#windowCount();
  }

  #windowCount(): number {
    let n = 0;
    for (let s = 0; s < this.#slotCount; s++) n += this.#slotTotals[s] ?? 0;
    return n;
  }

  /** The q-quantile (0 ≤ q ≤ 1) of the window; NaN when the window is empty. */
  quantile(q: number): number {
    const out = [Number.NaN];
    this.quantiles([q], out);
    return out[0] ?? Number.NaN;
  }

  /**
   * Several quantiles in one pass over the buckets, into `out` (same order as `qs`, which
   * must be ascending). NaN for each when the window is empty.
   */
  quantiles(qs: readonly number[], out: number[] = []): number[] {
    this.#rotate();
    const n = this.#windowCount();
    out.length = qs.length;
    if (n === 0) {
      out.fill(Number.NaN);
      return out;
    }
    let j = 0;
    let seen = 0;
    const b = this.#bucketCount;
    for (let i = 0; i < b && j < qs.length; i++) {
      for (let s = 0; s < this.#slotCount; s++) seen += this.#counts[s * b + i] ?? 0;
      // The k-th smallest value (k = max(1, ⌈q·n⌉)) lies in the first bucket where the
      // running count reaches k.
      while (j < qs.length && seen >= Math.max(1, Math.ceil((qs[j] ?? 0) * n))) {
        out[j++] = this.#values[i] ?? Number.NaN;
      }
    }
    // q > 1 (a caller's mistake) ranks past the last value: answer the largest.
    while (j < qs.length) out[j++] = this.#values[b - 1] ?? Number.NaN;
    return out;
  }

  /** Empties the window and zeroes sum and count (prom-client's `reset`). */
  reset(): void {
    this.#counts.fill(0);
    this.#slotTotals.fill(0);
    this.#sum = 0;
    this.#count = 0;
    this.#currentStart = this.#now();
  }

  /** Moves the current slot on by the slots the clock has passed, emptying each it enters. */
  #rotate(): void {
    const elapsed = this.#now() - this.#currentStart;
    // A clock that went back (only a custom one can) keeps the current slot.
    if (elapsed < this.#slotMs) return;
    const steps = Math.floor(elapsed / this.#slotMs);
    const b = this.#bucketCount;
    if (steps >= this.#slotCount) {
      this.#counts.fill(0);
      this.#slotTotals.fill(0);
      this.#current = (this.#current + steps) % this.#slotCount;
    } else {
      for (let k = 0; k < steps; k++) {
        this.#current = (this.#current + 1) % this.#slotCount;
        if (this.#slotTotals[this.#current] !== 0) {
          this.#counts.fill(0, this.#current * b, (this.#current + 1) * b);
          this.#slotTotals[this.#current] = 0;
        }
      }
    }
    this.#currentStart += steps * this.#slotMs;
  }
}
