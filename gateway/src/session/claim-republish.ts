/**
 * Publishing every live session's claim again, bounded (docs/reliability.md, rule 7). It is
 * asked for on each broker reconnect and each time a peer says it is up (its presence goes
 * out only once it has subscribed), which after a broker restart is several times within a
 * second, for up to ~1,000 sessions. So the requests coalesce: those made before a pass
 * starts share it, one made during a pass queues exactly one more (the claims already sent
 * in this pass went out before the peer that asked could hear them), and a pass sends
 * `batch` claims per turn of the event loop, leaving the loop free between batches. Pure:
 * the items and the scheduling are injected.
 */

/** Claims a pass publishes per turn of the event loop. */
export const REPUBLISH_BATCH = 100;

export interface ClaimRepublisherOptions<T> {
  /** The items to claim again, read when a pass starts. */
  readonly items: () => readonly T[];
  /** Still worth claiming when its batch comes (false: it closed meanwhile). */
  readonly live: (item: T) => boolean;
  readonly publish: (item: T) => void;
  /** Runs `fn` on a later turn of the event loop (default: setImmediate). */
  readonly defer?: (fn: () => void) => void;
  readonly batch?: number;
}

export class ClaimRepublisher<T> {
  readonly #o: ClaimRepublisherOptions<T>;
  readonly #defer: (fn: () => void) => void;
  /** "scheduled": a pass will start; "running": one is under way, `#again` queues one more. */
  #state: "idle" | "scheduled" | "running" = "idle";
  #again = false;
  #queue: T[] = [];

  constructor(options: ClaimRepublisherOptions<T>) {
    this.#o = options;
    this.#defer = options.defer ?? ((fn) => void setImmediate(fn));
  }

  /** A pass is wanted: every item's claim, sent after this call. */
  request(): void {
    if (this.#state === "scheduled") return;
    if (this.#state === "running") {
      this.#again = true;
      return;
    }
    this.#state = "scheduled";
    this.#defer(() => this.#start());
  }

  #start(): void {
    this.#state = "running";
    this.#again = false;
    this.#queue = [...this.#o.items()];
    this.#step();
  }

  #step(): void {
    const batch = this.#queue.splice(0, this.#o.batch ?? REPUBLISH_BATCH);
    for (const item of batch) if (this.#o.live(item)) this.#o.publish(item);
    if (this.#queue.length > 0) return this.#defer(() => this.#step());
    this.#state = "idle";
    if (this.#again) this.request();
  }
}
