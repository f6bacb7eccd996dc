/**
 * Whether the media process still answers. A crash ends its pipes and the supervisor
 * restarts it; a hang (a deadlock in the child, or a child stopped) ends nothing, and every
 * session of the instance would stay in its room with no audio either way, for good. So
 * the supervisor pings the child every interval and the child answers from the loop that
 * reads every frame the gateway sends (media/cmd/voice-media): a child that has not
 * answered for `hangTimeoutMs` is killed as hung, which ends its sessions and restarts it
 * as a crash does. Pure: the supervisor calls `tick` on its timer with the monotonic clock.
 */

export type LivenessStep =
  | { readonly kind: "ping"; readonly seq: number }
  | { readonly kind: "hung"; readonly silentMs: number }
  | undefined;

export class MediaLiveness {
  readonly #intervalMs: number;
  readonly #hangTimeoutMs: number;
  #seq = 0;
  #awaiting: { readonly seq: number; readonly sentAt: number } | undefined;
  #lastTick: number | undefined;

  constructor(intervalMs: number, hangTimeoutMs: number) {
    this.#intervalMs = intervalMs;
    this.#hangTimeoutMs = hangTimeoutMs;
  }

  /** Called every interval: a ping to send, a verdict of hung, or nothing to do. */
  tick(now: number): LivenessStep {
    const late = this.#lastTick !== undefined && now - this.#lastTick > 2 * this.#intervalMs;
    this.#lastTick = now;
    // The gateway's own event loop stalled: the pong may be waiting unread in the pipe, and
    // timers run before pipe reads. Judge on the next tick, after the reads.
    if (late) return undefined;
    if (this.#awaiting !== undefined) {
      const silentMs = now - this.#awaiting.sentAt;
      // The tick due at the timeout decides, even a fraction early: a repeating timer's
      // ticks, read on the monotonic clock, come as often a hair under the interval apart
      // as over it, and waiting for the next tick added a whole interval to the verdict.
      return silentMs >= this.#hangTimeoutMs - this.#intervalMs / 2 ? { kind: "hung", silentMs } : undefined;
    }
    this.#seq = (this.#seq + 1) >>> 0;
    this.#awaiting = { seq: this.#seq, sentAt: now };
    return { kind: "ping", seq: this.#seq };
  }

  /** Whether a ping still waits for its answer. */
  get awaiting(): boolean {
    return this.#awaiting !== undefined;
  }

  /**
   * The child's answer: its round trip in ms. One to an older ping (or none sent) changes
   * nothing: undefined.
   */
  pong(seq: number, now: number): number | undefined {
    if (this.#awaiting?.seq !== seq) return undefined;
    const roundTripMs = now - this.#awaiting.sentAt;
    this.#awaiting = undefined;
    return roundTripMs;
  }
}
