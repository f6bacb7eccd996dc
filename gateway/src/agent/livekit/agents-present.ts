/**
 * The agents in a session's room, and when the last of them left: unless one joins again
 * within AGENT_GONE_GRACE_MS, the session ends (`agent_ended`, bridge.ts), since nothing
 * else would ever answer the device in this room.
 */

/**
 * How long a room may stay without an agent before the session ends. What can bring one
 * back is the same agent rejoining after a full reconnect of its connection: the server
 * removes the old participant when the new one joins under the same identity, so the join
 * follows the leave at once (livekit-server roommanager.go). Nothing dispatches a new
 * agent into a room later: auto-dispatch acts when the room is created, our explicit
 * dispatch once at open, and the server does not dispatch a job again once it has ended.
 * So the grace covers a slow reconnect and no more: meanwhile the device hears nothing.
 */
export const AGENT_GONE_GRACE_MS = 3000;

export class AgentsPresent {
  readonly #agents = new Set<string>();
  /** When the last agent left the room; undefined while one is in it (or none came yet). */
  #goneAt: number | undefined;

  get count(): number {
    return this.#agents.size;
  }

  has(identity: string): boolean {
    return this.#agents.has(identity);
  }

  /** The last agent left and none has joined since (the grace may have passed). */
  get gone(): boolean {
    return this.#goneAt !== undefined;
  }

  joined(identity: string): void {
    this.#agents.add(identity);
    this.#goneAt = undefined;
  }

  /** A participant left at `now`: whether it was the last agent in the room. */
  left(identity: string, now: number): boolean {
    if (!this.#agents.delete(identity) || this.#agents.size > 0) return false;
    this.#goneAt = now;
    return true;
  }

  /** When the session ends for want of an agent, if none is in the room. */
  nextDeadline(): number | undefined {
    return this.#goneAt === undefined ? undefined : this.#goneAt + AGENT_GONE_GRACE_MS;
  }

  /** Whether the grace has passed without an agent (once: the wait is then over). */
  endDue(now: number): boolean {
    if (this.#goneAt === undefined || now < this.#goneAt + AGENT_GONE_GRACE_MS) return false;
    this.#goneAt = undefined;
    return true;
  }
}
