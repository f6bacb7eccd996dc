/**
 * Puts the agent's RTP back in sequence order before decoding. Bounded and pure: the
 * caller passes the time and calls `pop` when a packet arrives or `deadline` passes.
 *
 * A packet that is missing is waited for up to `waitMs` (only while a later one is already
 * here: in-order traffic is never delayed), then reported as lost so the decoder conceals
 * it. Sequence numbers are consecutive across DTX pauses (RTP counts packets, not time),
 * so a sequence gap is always loss. Late, duplicate and overflow packets are dropped and
 * counted by reason.
 */
export interface RtpPacket {
  readonly sequence: number;
  readonly timestamp: number;
  readonly payload: Buffer;
  /** When it arrived (the caller's clock), carried through for latency figures. */
  readonly arrivedMs?: number;
}

export type Released =
  | { readonly kind: "packet"; readonly packet: RtpPacket }
  /** `overflow`: given up because the buffer was full, not because the wait ran out. */
  | { readonly kind: "lost"; readonly count: number; readonly overflow: boolean };

export type JitterDrop = "late" | "duplicate" | "overflow";

export interface JitterOptions {
  /** Packets held at most; beyond it the gap is given up and counted `overflow`. */
  readonly maxPackets: number;
  /** How long a missing packet is waited for once a later one is here. */
  readonly waitMs: number;
}

/** a - b on the 16-bit sequence circle, in -32768..32767. */
function seqDiff(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

export class JitterBuffer {
  readonly #options: JitterOptions;
  readonly #held = new Map<number, RtpPacket>();
  #next: number | undefined;
  /** The missing sequence number being waited for, and since when. */
  #gap: { readonly seq: number; readonly since: number } | undefined;
  readonly #drops: Record<JitterDrop, number> = { late: 0, duplicate: 0, overflow: 0 };

  constructor(options: JitterOptions) {
    this.#options = options;
  }

  get drops(): Readonly<Record<JitterDrop, number>> {
    return this.#drops;
  }

  get size(): number {
    return this.#held.size;
  }

  /** When pop() should be called again to give up a gap; undefined when none is open. */
  get deadline(): number | undefined {
    return this.#gap === undefined ? undefined : this.#gap.since + this.#options.waitMs;
  }

  push(packet: RtpPacket, nowMs: number): JitterDrop | undefined {
    if (this.#next === undefined) this.#next = packet.sequence;
    const ahead = seqDiff(packet.sequence, this.#next);
    let drop: JitterDrop | undefined;
    if (ahead < 0) drop = "late";
    else if (this.#held.has(packet.sequence)) drop = "duplicate";
    if (drop) {
      this.#drops[drop]++;
      return drop;
    }
    this.#held.set(packet.sequence, packet);
    if (ahead > 0 && this.#gap?.seq !== this.#next) this.#gap = { seq: this.#next, since: nowMs };
    return undefined;
  }

  /** Everything that can be released now, in order. */
  pop(nowMs: number): Released[] {
    const out: Released[] = [];
    for (;;) {
      this.#releaseInOrder(out);
      const next = this.#next as number;
      if (this.#held.size === 0) {
        this.#gap = undefined;
        return out;
      }
      if (this.#gap?.seq !== next) this.#gap = { seq: next, since: nowMs };
      const overflow = this.#held.size > this.#options.maxPackets;
      const expired = nowMs >= this.#gap.since + this.#options.waitMs;
      if (!overflow && !expired) return out;
      if (overflow) this.#drops.overflow++;
      // Give up the gap: everything up to the oldest packet held is lost.
      let oldest = Number.POSITIVE_INFINITY;
      for (const seq of this.#held.keys()) oldest = Math.min(oldest, seqDiff(seq, next));
      out.push({ kind: "lost", count: oldest, overflow });
      this.#next = (next + oldest) & 0xffff;
      this.#gap = undefined;
    }
  }

  #releaseInOrder(out: Released[]): void {
    for (;;) {
      const next = this.#next;
      if (next === undefined) return;
      const p = this.#held.get(next);
      if (!p) return;
      this.#held.delete(next);
      out.push({ kind: "packet", packet: p });
      this.#next = (next + 1) & 0xffff;
    }
  }

  /** Forgets everything (a new track, or the session leaves). */
  reset(): void {
    this.#held.clear();
    this.#next = undefined;
    this.#gap = undefined;
  }
}
