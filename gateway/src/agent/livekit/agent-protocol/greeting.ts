/**
 * When the agent is asked to greet: once per agent participant, when it is present and the
 * device's UDP address is known (its first audio packet arrived), or GREETING_WAIT_MS after
 * the session started if the device has sent no audio by then (BUNNY waits the same 10 s).
 * Pure; time is passed in.
 */
export const GREETING_WAIT_MS = 10_000;

export class Greeting {
  readonly #startedAt: number;
  readonly #waiting = new Set<string>();
  readonly #greeted = new Set<string>();
  #udpKnown = false;

  constructor(startedAt: number) {
    this.#startedAt = startedAt;
  }

  agentJoined(identity: string): void {
    if (!this.#greeted.has(identity)) this.#waiting.add(identity);
  }

  agentLeft(identity: string): void {
    this.#waiting.delete(identity);
  }

  udpKnown(): void {
    this.#udpKnown = true;
  }

  /** The agents to greet now; each is returned once, ever. */
  due(now: number): string[] {
    if (this.#waiting.size === 0) return [];
    if (!this.#udpKnown && now - this.#startedAt < GREETING_WAIT_MS) return [];
    const out = [...this.#waiting];
    for (const id of out) this.#greeted.add(id);
    this.#waiting.clear();
    return out;
  }

  nextDeadline(): number | undefined {
    return this.#waiting.size > 0 && !this.#udpKnown ? this.#startedAt + GREETING_WAIT_MS : undefined;
  }
}
