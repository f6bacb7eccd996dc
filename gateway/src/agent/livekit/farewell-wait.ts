/**
 * The bridge's wait for the agent's goodbye before an inactivity close: the pure Farewell
 * (agent-protocol/farewell.ts) decides when it is over; this holds the promise the session
 * waits on and settles it, at most once per wait.
 */
import { Farewell } from "./agent-protocol/farewell.ts";

export class FarewellWait {
  #current:
    | { readonly state: Farewell; readonly resolve: () => void; readonly done: Promise<void> }
    | undefined;

  /**
   * Starts a wait at `now`, or joins the one under way. `started` is true when this call
   * began it (the caller then asks the agent for its goodbye).
   */
  begin(now: number): { readonly done: Promise<void>; readonly started: boolean } {
    if (this.#current) return { done: this.#current.done, started: false };
    let resolve = () => {};
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    this.#current = { state: new Farewell(now), resolve, done };
    return { done, started: true };
  }

  turnStarted(now: number): void {
    this.#current?.state.turnStarted(now);
  }

  turnEnded(now: number): void {
    this.#current?.state.turnEnded(now);
  }

  nextDeadline(): number | undefined {
    return this.#current?.state.nextDeadline();
  }

  /** Settles the wait if its goodbye is over by `now`. */
  tick(now: number): void {
    if (this.#current?.state.done(now)) this.settle();
  }

  /** Settles the wait now (no agent is left to say goodbye, or the session closes). */
  settle(): void {
    const current = this.#current;
    this.#current = undefined;
    current?.resolve();
  }
}
