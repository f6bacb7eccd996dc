/**
 * Puts the agent's RTP back in sequence order before decoding. Bounded and pure: the
 * caller passes the time and calls `pop` when a packet arrives or `deadline` passes.
 *
 * A packet that is missing is waited for up to `waitMs` (only while a later one is already
 * here: in-order traffic is never delayed), then reported as lost so the decoder conceals
 * it. Sequence numbers are consecutive across DTX pauses (RTP counts packets, not time),
 * so a sequence gap is always loss. Late, duplicate and overflow packets are dropped and
 * counted by reason.
 *
 * The media process forwards the agent's newest track from its first packet, and the one
 * before it again when that one ends (the agent republished, or another agent joined); a
 * track heard anew starts at a sequence number unrelated to the one before. Each packet
 * carries the generation of the track heard (`generation`, 16 bits, counted by the media
 * process), so a packet of a newer generation restarts the buffer at itself (`new_track`),
 * after releasing what the old track still held, and one of an older generation (queued by
 * the old track's reader just as the switch came) is dropped (`old_track`). Until
 * 2026-12-07 a track change was guessed from the sequence numbers alone (the far rule
 * below): a new track landing up to 100 behind the old one was dropped as late for up to
 * ~100 packets, one landing up to 3000 ahead was taken for a loss gap.
 *
 * Within one track the sequence numbers are the SFU's own, continuous for the subscriber. A
 * packet far from where the stream is (`isFar`) is still dropped, and starts a new stream
 * only when the next packet confirms it (`resync`): without that, a single stray far-ahead
 * packet, once the wait for it ran out, left every later packet behind as late for up to
 * 32,768 packets, and a jump in the track's own numbering silenced it the same way.
 */
export interface RtpPacket {
  /** The generation of the track heard when the media process forwarded it (u16). */
  readonly generation: number;
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

/**
 * Why a packet was dropped. `far`: far from the stream (`isFar`) within its track and not
 * followed by a packet of the same new stream: a stray. `old_track`: of an older
 * generation than the track heard now.
 */
export type JitterDrop = "late" | "duplicate" | "overflow" | "far" | "old_track";
/**
 * What `push` reports: a drop, or the packet was kept and the buffer restarted at it:
 * `new_track` (a newer generation), `resync` (a jump within one track, confirmed).
 */
export type JitterCount = JitterDrop | "new_track" | "resync";

export interface JitterOptions {
  /** Packets held at most; beyond it the gap is given up and counted `overflow`. */
  readonly maxPackets: number;
  /** How long a missing packet is waited for once a later one is here. */
  readonly waitMs: number;
}

/**
 * How far from the next expected sequence number a packet is "far": RFC 3550's own bounds
 * for this question (appendix A.1, MAX_MISORDER and MAX_DROPOUT). A reordered, duplicated
 * or retransmitted packet (the Go SDK NACKs losses, and a retransmission comes an RTT or
 * more later) is at most a few dozen packets behind; 100 is 2 s of 20 ms packets. A real
 * gap of 3000 packets is a minute of 20 ms packets lost. The first far packet is dropped;
 * the buffer restarts only when the next packet is far too and within `maxPackets` of it
 * (RFC 3550's "two sequential packets"), so a single stray costs that packet alone.
 */
export const FAR_BEHIND = 100;
export const FAR_AHEAD = 3000;

/** a - b on the 16-bit circle (sequence numbers, generations), in -32768..32767. */
function seqDiff(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

function isFar(ahead: number): boolean {
  return ahead < -FAR_BEHIND || ahead > FAR_AHEAD;
}

export class JitterBuffer {
  readonly #options: JitterOptions;
  readonly #held = new Map<number, RtpPacket>();
  /** The generation of the track being played. */
  #generation: number | undefined;
  #next: number | undefined;
  /** The missing sequence number being waited for, and since when. */
  #gap: { readonly seq: number; readonly since: number } | undefined;
  /** The sequence number of the previous packet when it was far (a new stream's first). */
  #far: number | undefined;
  /** The old stream's held packets at a restart, handed out by the next pop. */
  #flushed: Released[] = [];
  readonly #counts: Record<JitterCount, number> = {
    late: 0,
    duplicate: 0,
    overflow: 0,
    far: 0,
    old_track: 0,
    new_track: 0,
    resync: 0,
  };

  constructor(options: JitterOptions) {
    this.#options = options;
  }

  /** Packets dropped by reason, and restarts. */
  get counts(): Readonly<Record<JitterCount, number>> {
    return this.#counts;
  }

  get size(): number {
    return this.#held.size;
  }

  /** When pop() should be called again to give up a gap; undefined when none is open. */
  get deadline(): number | undefined {
    return this.#gap === undefined ? undefined : this.#gap.since + this.#options.waitMs;
  }

  push(packet: RtpPacket, nowMs: number): JitterCount | undefined {
    let restarted: "new_track" | "resync" | undefined;
    if (this.#generation === undefined) this.#generation = packet.generation;
    const newer = seqDiff(packet.generation, this.#generation);
    if (newer < 0) return this.#count("old_track");
    if (newer > 0) {
      this.#generation = packet.generation;
      this.#restart(packet.sequence);
      restarted = "new_track";
    }
    if (this.#next === undefined) this.#next = packet.sequence;
    let ahead = seqDiff(packet.sequence, this.#next);
    if (isFar(ahead)) {
      const sincePrevious = this.#far === undefined ? 0 : seqDiff(packet.sequence, this.#far);
      if (sincePrevious === 0 || Math.abs(sincePrevious) > this.#options.maxPackets) {
        this.#far = packet.sequence;
        return this.#count("far");
      }
      this.#restart(packet.sequence);
      ahead = 0;
      restarted = "resync";
    }
    this.#far = undefined;
    if (ahead < 0) return this.#count("late");
    if (this.#held.has(packet.sequence)) return this.#count("duplicate");
    this.#held.set(packet.sequence, packet);
    if (ahead > 0 && this.#gap?.seq !== this.#next) this.#gap = { seq: this.#next, since: nowMs };
    return restarted ? this.#count(restarted) : undefined;
  }

  #count<C extends JitterCount>(c: C): C {
    this.#counts[c]++;
    return c;
  }

  /** Everything that can be released now, in order. */
  pop(nowMs: number): Released[] {
    const out = this.#flushed;
    this.#flushed = [];
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
      if (overflow) this.#counts.overflow++;
      this.#giveUpGap(out, overflow);
    }
  }

  /** Everything up to the oldest packet held is lost. */
  #giveUpGap(out: Released[], overflow: boolean): void {
    const next = this.#next as number;
    let oldest = Number.POSITIVE_INFINITY;
    for (const seq of this.#held.keys()) oldest = Math.min(oldest, seqDiff(seq, next));
    out.push({ kind: "lost", count: oldest, overflow });
    this.#next = (next + oldest) & 0xffff;
    this.#gap = undefined;
  }

  /**
   * Restarts at `sequence`. What the old stream still holds is released first, as if its
   * wait had run out: it is audio the agent sent.
   */
  #restart(sequence: number): void {
    for (;;) {
      this.#releaseInOrder(this.#flushed);
      if (this.#held.size === 0) break;
      this.#giveUpGap(this.#flushed, false);
    }
    this.#next = sequence;
    this.#gap = undefined;
    this.#far = undefined;
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

  /** Forgets everything (the session leaves). */
  reset(): void {
    this.#held.clear();
    this.#generation = undefined;
    this.#next = undefined;
    this.#gap = undefined;
    this.#far = undefined;
    this.#flushed = [];
  }
}
