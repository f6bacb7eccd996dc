/**
 * The goodbye before an inactivity close (device-protocol.md 6.2): `end_prompt` goes to the
 * agent; the session closes once the agent has said its goodbye (the turn that follows has
 * ended, plus AFTER_GOODBYE_MS for the last frames), at once if it does not start speaking
 * within SPEAK_WAIT_MS (Agent A only logs end_prompt), and after CAP_MS in any case
 * (BUNNY's 30 s end_prompt_timeout). Pure; time is passed in.
 */
export const SPEAK_WAIT_MS = 5000;
export const CAP_MS = 30_000;
export const AFTER_GOODBYE_MS = 500;

export class Farewell {
  readonly #startedAt: number;
  #spokeAt: number | undefined;
  #endedAt: number | undefined;

  constructor(now: number) {
    this.#startedAt = now;
  }

  turnStarted(now: number): void {
    this.#spokeAt ??= now;
    this.#endedAt = undefined;
  }

  turnEnded(now: number): void {
    if (this.#spokeAt !== undefined) this.#endedAt = now;
  }

  done(now: number): boolean {
    return now >= this.nextDeadline();
  }

  nextDeadline(): number {
    const cap = this.#startedAt + CAP_MS;
    if (this.#endedAt !== undefined) return Math.min(cap, this.#endedAt + AFTER_GOODBYE_MS);
    if (this.#spokeAt === undefined) return Math.min(cap, this.#startedAt + SPEAK_WAIT_MS);
    return cap;
  }
}
