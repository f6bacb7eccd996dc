/** Session timers on a clock the test moves (`advance`), for timeouts without real waiting. */
import type { SessionTimer, StartTimer } from "../../src/session/timer.ts";

interface Pending {
  dueAt: number;
  readonly ms: number;
  readonly fire: () => void;
  /** Due to fire: false once it has fired, until a refresh re-arms it (as Node's does). */
  armed: boolean;
  cancelled: boolean;
}

export class ManualTimers {
  #now = 0;
  readonly #timers: Pending[] = [];

  /** The clock's time, ms (starts at 0). */
  readonly now = (): number => this.#now;

  readonly start: StartTimer = (ms, fire): SessionTimer => {
    const t: Pending = { dueAt: this.#now + ms, ms, fire, armed: true, cancelled: false };
    this.#timers.push(t);
    return {
      refresh: () => {
        t.dueAt = this.#now + t.ms;
        t.armed = true;
      },
      cancel: () => {
        t.cancelled = true;
      },
    };
  };

  /** Moves the clock on, firing the timers that fall due, in order (each once, unless re-armed). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => t.armed && !t.cancelled && t.dueAt <= end)
        .sort((a, b) => a.dueAt - b.dueAt)[0];
      if (!due) break;
      this.#now = due.dueAt;
      due.armed = false;
      due.fire();
    }
    this.#now = end;
  }
}
