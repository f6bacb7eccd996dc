/**
 * RTP timestamps for the device's Opus packets, following the device's real timing. Opus
 * RTP runs at 48 kHz whatever the encoder's rate (RFC 7587 section 4.1): a 60 ms packet
 * advances 2880 ticks, a 20 ms one 960.
 *
 * Packets of one utterance are consecutive (each advances exactly one frame, whatever the
 * network jitter between them); a gap of two frames or more is a pause and advances by the
 * elapsed time rounded to whole frames, so the subscriber hears a pause as a pause. A
 * packet lost on the way is a frame all the same: the device's UDP sequence (which counts
 * every packet it sent, one frame each) sets the least a packet advances, so the
 * subscriber conceals the missing frame instead of hearing the audio close up around it.
 * Pure: the caller passes the arrival time.
 */
const TICKS_PER_MS = 48;
/**
 * The longest step between two packets: the Go SDK's LocalTrack.WriteSample takes a step
 * of more than 2^31 ticks (a pause of 12.4 h) for a packet from the past and refuses it,
 * and every later packet with it until the timestamps come round again (media test
 * TestOpusTimestampStepsReachTheTrack). A longer pause is heard as this long.
 */
const MAX_STEP_TICKS = 2 ** 31 - 1;

export class UpstreamClock {
  #last: { at: number; timestamp: number; sequence: number } | undefined;
  readonly #start: number;

  /** `start` is the first packet's timestamp (random in production, as RTP asks). */
  constructor(start: number) {
    this.#start = start >>> 0;
  }

  /**
   * The timestamp for a packet of `durationMs` that arrived at `nowMs` with the device's
   * UDP `sequence` (strictly increasing within a session: upstream-guard.ts).
   */
  next(nowMs: number, durationMs: number, sequence: number): number {
    const frame = durationMs * TICKS_PER_MS;
    let timestamp: number;
    if (!this.#last) timestamp = this.#start;
    else {
      const gap = nowMs - this.#last.at;
      const elapsed = gap < 2 * durationMs ? 1 : Math.round(gap / durationMs);
      const sent = sequence - this.#last.sequence;
      const frames = Math.min(Math.max(elapsed, sent, 1), Math.floor(MAX_STEP_TICKS / frame));
      timestamp = (this.#last.timestamp + frames * frame) >>> 0;
    }
    // 0 would read as "no timestamp" in the Go SDK's WriteSample; one tick off is inaudible.
    if (timestamp === 0) timestamp = 1;
    this.#last = { at: nowMs, timestamp, sequence };
    return timestamp;
  }
}
