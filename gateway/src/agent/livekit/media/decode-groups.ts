/**
 * Groups the agent's Opus packets, once in order, so that one decode job covers one
 * downstream frame (60 ms) instead of one job per 20 ms packet. Pure; time is passed in.
 *
 * Why it adds no delay: the downstream framer holds PCM until a whole 60 ms frame is
 * there, so a frame leaves when its last packet has been decoded whether its first two
 * were decoded on arrival or together with the third. Groups therefore end where the
 * framer's frames end: the first packet of a burst (after `burstGapMs` without packets) is
 * handed over alone, at once, so a turn that voiced audio opens starts as early as
 * before; from there each group closes when the audio so far reaches the next frame
 * boundary. A group still open `lateMs` after its newest packet (the burst ended in DTX,
 * or a packet is late) is handed over as it is; the boundary count goes on from there, so
 * a short group costs one extra job, not alignment.
 *
 * The framer's own position can differ from the one counted here (audio outside a turn
 * never reaches it; a turn end pads its last frame), after which frames may leave up to two
 * packets later than they could, until the next burst starts the count again. That is the
 * price of not asking the framer; docs/media-process.md has the figures.
 */

export type GroupEntry =
  /** An agent packet, with when it arrived (the caller's clock). */
  | { readonly kind: "packet"; readonly payload: Buffer; readonly arrivedMs: number }
  /** A lost packet, to be concealed by the decoder. */
  | { readonly kind: "conceal" };

export interface DecodeGroupOptions {
  /** The downstream frame: a group closes at each multiple of it. */
  readonly frameMs: number;
  /** A packet after this long without one starts a burst (and is handed over alone). */
  readonly burstGapMs: number;
  /** An open group is handed over this long after its newest packet at the latest. */
  readonly lateMs: number;
}

/** Agents send 20 ms packets; assumed for concealment until a packet says otherwise. */
const DEFAULT_PACKET_TENTHS_MS = 200;

export class DecodeGroups {
  readonly #frameTenths: number;
  readonly #options: DecodeGroupOptions;
  #group: GroupEntry[] = [];
  #groupTenths = 0;
  /** Audio handed over since the burst started, modulo the frame. */
  #phaseTenths = 0;
  #lastAddedMs: number | undefined;
  #lastPacketTenths = DEFAULT_PACKET_TENTHS_MS;

  constructor(options: DecodeGroupOptions) {
    this.#options = options;
    this.#frameTenths = options.frameMs * 10;
  }

  /** When `due` should be called to hand over an open group; undefined when none is open. */
  get deadline(): number | undefined {
    return this.#group.length === 0 || this.#lastAddedMs === undefined
      ? undefined
      : this.#lastAddedMs + this.#options.lateMs;
  }

  /**
   * `durationTenthsMs`: the packet's audio (from its TOC), ignored for concealment, which
   * stands for a packet as long as the last one. Returns a group to decode now, if any.
   */
  add(entry: GroupEntry, durationTenthsMs: number, now: number): GroupEntry[] | undefined {
    const tenths =
      entry.kind === "packet" && durationTenthsMs > 0 ? durationTenthsMs : this.#lastPacketTenths;
    if (entry.kind === "packet") this.#lastPacketTenths = tenths;
    const burstStart =
      this.#group.length === 0 &&
      (this.#lastAddedMs === undefined || now - this.#lastAddedMs >= this.#options.burstGapMs);
    this.#lastAddedMs = now;
    if (burstStart) {
      this.#phaseTenths = tenths % this.#frameTenths;
      return [entry];
    }
    this.#group.push(entry);
    this.#groupTenths += tenths;
    if (this.#phaseTenths + this.#groupTenths >= this.#frameTenths) return this.#take();
    return undefined;
  }

  /** The open group, if its deadline has passed. */
  due(now: number): GroupEntry[] | undefined {
    const deadline = this.deadline;
    if (deadline === undefined || now < deadline) return undefined;
    return this.#take();
  }

  /** Forgets the open group and the count (the transport is going away). */
  reset(): void {
    this.#group = [];
    this.#groupTenths = 0;
    this.#phaseTenths = 0;
    this.#lastAddedMs = undefined;
  }

  #take(): GroupEntry[] {
    const group = this.#group;
    this.#phaseTenths = (this.#phaseTenths + this.#groupTenths) % this.#frameTenths;
    this.#group = [];
    this.#groupTenths = 0;
    return group;
  }
}
