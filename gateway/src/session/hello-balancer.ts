/**
 * Which instance a new hello should open its session on (docs/reliability.md, rule 6):
 * here, or a less loaded live peer. A peer's load is what its claims say plus the hellos
 * we passed it in the last second (their claims may not be back yet); a peer that has not
 * claimed a hello we passed it within a second may be hung, and gets no more until it does
 * (or restarts). No I/O; time is passed in.
 */
import type { ClaimBook } from "./claim-book.ts";
import { balanceTarget, type PeerPresence } from "./owner-routing.ts";

/** A hello passed on counts toward the peer's load this long (its claim is back by then). */
const MEMORY_MS = 1000;
/** How long an unanswered passed-on hello keeps its peer out of balancing. */
const SUSPECT_MS = 30_000;

export class HelloBalancer {
  readonly #slack: number;
  /** Per peer: client id -> when we passed its hello on. */
  readonly #passed = new Map<number, Map<string, number>>();

  constructor(slack: number) {
    this.#slack = slack;
  }

  /** The peer to pass this hello to, if this instance is `slack` sessions above the least loaded. */
  pick(
    clientId: string,
    me: { instanceId: number; sessions: number },
    peers: ReadonlyMap<number, PeerPresence>,
    claims: ClaimBook,
    now: number,
  ): number | undefined {
    if (this.#slack <= 0) return undefined;
    const live = [me.instanceId];
    const pending = new Map<number, number>();
    for (const [id, p] of peers) {
      if (p.state !== "up") continue;
      const sent = this.#passed.get(id);
      let recent = 0;
      let overdue = false;
      for (const [client, at] of sent ?? []) {
        if (now - at > SUSPECT_MS) sent?.delete(client);
        else if (now - at > MEMORY_MS) overdue = true;
        else recent++;
      }
      if (overdue) continue;
      live.push(id);
      pending.set(id, recent);
    }
    const load = (id: number) => {
      if (id === me.instanceId) return me.sessions;
      const p = peers.get(id);
      return (p ? claims.load(id, p.bootId) : 0) + (pending.get(id) ?? 0);
    };
    const target = balanceTarget(me.instanceId, load, live, this.#slack, clientId);
    if (target !== undefined) {
      const sent = this.#passed.get(target) ?? new Map<string, number>();
      sent.set(clientId, now);
      this.#passed.set(target, sent);
    }
    return target;
  }

  /** `instanceId` claimed this client: a hello we passed it was answered. */
  claimed(instanceId: number, clientId: string): void {
    this.#passed.get(instanceId)?.delete(clientId);
  }

  /** The peer restarted or left: what we passed its earlier boot says nothing now. */
  forgetPeer(instanceId: number): void {
    this.#passed.delete(instanceId);
  }
}
