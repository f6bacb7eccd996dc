/**
 * Which upstream datagrams of one session are the device's: the sequence window and the
 * pinned source address. Pure (no sockets, no clock): the session asks, this decides.
 *
 * AES-CTR has no integrity tag, so anyone who has seen one datagram (connection id and
 * sequence are in clear) can forge packets that decrypt to random bytes, and about 1 in 80
 * of those passes every Opus sanity check (docs/security.md). A forged packet must
 * therefore never be able to move the state the genuine sender depends on:
 *
 * - From the pinned address, a packet is taken when its sequence is newer than the last
 *   one taken and at most MAX_SEQUENCE_JUMP ahead (a few seconds of lost frames).
 * - From any other address, or beyond the jump bound, a packet is never taken on its own
 *   and never advances the pinned window. It only counts towards a candidate: after
 *   MOVE_AFTER consecutive plausible packets from one source address and port, in
 *   sequence order with small gaps, the candidate becomes the pinned state (a NAT
 *   rebinding, or a device back after a long outage). A packet from the candidate's
 *   address that fails the Opus check, or replays, resets the candidate, so a forger who
 *   cannot see the key needs MOVE_AFTER passes in a row: (1/80)^4, about 1 in 40 million.
 */
import type { RemoteAddress } from "./downstream.ts";

/**
 * Largest forward step of the upstream sequence taken from the pinned address: 50 frames
 * of 60 ms, 3 s of consecutive loss. A larger genuine gap (an outage) is taken back through
 * the candidate rule, after MOVE_AFTER packets.
 */
export const MAX_SEQUENCE_JUMP = 50;
/** Consecutive plausible packets from one new source before the session moves to it. */
export const MOVE_AFTER = 4;
/** Largest sequence step between two packets of one candidate (a little loss is normal). */
export const MAX_CANDIDATE_GAP = 8;

export type UpstreamDrop = "udp_replay" | "udp_sequence_jump" | "udp_bad_opus" | "udp_unproven_source";

export type UpstreamVerdict =
  | {
      readonly kind: "accept";
      readonly moved: boolean;
      /**
       * Sequence numbers skipped since the last packet taken: the device numbers every
       * packet it sends from 1, so each is a frame missing from the stream (lost on the way,
       * or dropped here).
       */
      readonly missed: number;
    }
  | { readonly kind: "drop"; readonly reason: UpstreamDrop };

interface Candidate {
  readonly address: string;
  readonly port: number;
  lastSeq: number;
  count: number;
}

export class UpstreamGuard {
  #remote: RemoteAddress | undefined;
  #lastSeq = 0;
  #candidate: Candidate | undefined;

  /** Where downstream audio goes: the pinned address (undefined before the first packet). */
  get remote(): RemoteAddress | undefined {
    return this.#remote;
  }

  get lastSequence(): number {
    return this.#lastSeq;
  }

  /**
   * One upstream packet with sequence `seq` from `from`. `plausible` decrypts and checks
   * the Opus packet; it is called at most once, and only for a packet that is not a
   * replay, so replays cost no AES.
   */
  admit(seq: number, from: RemoteAddress, plausible: () => boolean): UpstreamVerdict {
    const fromCandidate = this.#candidate !== undefined && same(this.#candidate, from);
    if (seq <= this.#lastSeq) {
      if (fromCandidate) this.#candidate = undefined;
      return { kind: "drop", reason: "udp_replay" };
    }
    const pinned = this.#remote === undefined || same(this.#remote, from);
    if (pinned && seq - this.#lastSeq <= MAX_SEQUENCE_JUMP) {
      if (!plausible()) return { kind: "drop", reason: "udp_bad_opus" };
      const missed = seq - this.#lastSeq - 1;
      this.#lastSeq = seq;
      const first = this.#remote === undefined;
      if (first) this.#remote = { address: from.address, port: from.port };
      // The pinned sender goes on in order: a jump candidate from its own address is moot.
      if (fromCandidate) this.#candidate = undefined;
      return { kind: "accept", moved: first, missed };
    }
    if (!plausible()) {
      if (fromCandidate) this.#candidate = undefined;
      return { kind: "drop", reason: "udp_bad_opus" };
    }
    const c = this.#candidate;
    if (c && fromCandidate && seq > c.lastSeq && seq - c.lastSeq <= MAX_CANDIDATE_GAP) {
      c.count++;
      c.lastSeq = seq;
    } else {
      this.#candidate = { address: from.address, port: from.port, lastSeq: seq, count: 1 };
    }
    if ((this.#candidate as Candidate).count < MOVE_AFTER) {
      return { kind: "drop", reason: pinned ? "udp_sequence_jump" : "udp_unproven_source" };
    }
    this.#candidate = undefined;
    const missed = seq - this.#lastSeq - 1;
    this.#lastSeq = seq;
    this.#remote = { address: from.address, port: from.port };
    return { kind: "accept", moved: !pinned, missed };
  }
}

function same(a: RemoteAddress, b: RemoteAddress): boolean {
  return a.address === b.address && a.port === b.port;
}
