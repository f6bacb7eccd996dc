/**
 * One timer for the soonest of a bridge's deadlines (turn end, greeting wait, farewell,
 * agent gone, the release of a departed sender's transcriptions): started again only for a
 * sooner deadline than the one it waits for, and free for any once it has fired.
 */
import type { StartTimer } from "../../session/timer.ts";

/** Node's timers, unref'd: a bridge's deadlines never keep the process alive by themselves. */
export const startUnrefTimer: StartTimer = (ms, fire) => {
  const t = setTimeout(fire, ms);
  t.unref();
  return { refresh: () => void t.refresh(), cancel: () => clearTimeout(t) };
};

export class DeadlineTimer {
  readonly #startTimer: StartTimer;
  readonly #now: () => number;
  readonly #fire: () => void;
  #timer: { cancel(): void } | undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  /** `fire`: called when the soonest deadline is due (the timer is then free again). */
  constructor(startTimer: StartTimer, now: () => number, fire: () => void) {
    this.#startTimer = startTimer;
    this.#now = now;
    this.#fire = fire;
  }

  /** Waits for the soonest of `deadlines` (undefined: none), unless it waits for one as soon. */
  arm(deadlines: readonly (number | undefined)[]): void {
    const next = Math.min(...deadlines.filter((d): d is number => d !== undefined));
    if (!Number.isFinite(next) || next >= this.#timerAt) return;
    this.#timer?.cancel();
    this.#timerAt = next;
    this.#timer = this.#startTimer(Math.max(0, next - this.#now()), () => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      this.#fire();
    });
  }

  cancel(): void {
    this.#timer?.cancel();
  }
}
