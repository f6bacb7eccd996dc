/**
 * Who handles a device's follow-up message (docs/broker-contract.md, docs/reliability.md). The broker
 * hands each message to any one instance; the session id names the owner. Pure.
 */
import { parseSessionOwner, type SessionOwner } from "../protocol/session-id.ts";

export interface PeerPresence {
  readonly bootId: string;
  readonly state: "up" | "draining";
}

export type OwnerDecision =
  | { readonly kind: "local" }
  /** Another live instance owns it: pass the message on. */
  | { readonly kind: "forward"; readonly instanceId: number }
  /** No live instance holds this session: tell the device goodbye so it re-hellos now. */
  | { readonly kind: "stale" };

export function decideOwner(
  sessionId: string | undefined,
  me: SessionOwner,
  peers: ReadonlyMap<number, PeerPresence>,
): OwnerDecision {
  if (sessionId === undefined) return { kind: "local" };
  const owner = parseSessionOwner(sessionId);
  if (!owner) return { kind: "stale" };
  if (owner.instanceId === me.instanceId) {
    return owner.bootId === me.bootId ? { kind: "local" } : { kind: "stale" };
  }
  const peer = peers.get(owner.instanceId);
  if (peer && peer.bootId === owner.bootId) return { kind: "forward", instanceId: owner.instanceId };
  return { kind: "stale" };
}

/**
 * A session's claim on its device, published on `gateway/claims/<clientId>` when the
 * session opens and again after every broker reconnect. Every instance receives every
 * claim; `helloAt` (epoch ms, when the hello reached the instance) orders them.
 */
export interface Claim {
  readonly instanceId: number;
  readonly bootId: string;
  readonly sessionId: string;
  readonly helloAt: number;
}

/**
 * Whether claim `a` is newer than claim `b`: the later hello wins, whichever instance
 * happened to process it last, so two instances that see the same two claims in
 * different orders still agree. Equal times (same millisecond) fall back to the session
 * id, any fixed order will do.
 */
export function newerClaim(a: Claim, b: Claim): boolean {
  if (a.helloAt !== b.helloAt) return a.helloAt > b.helloAt;
  return a.sessionId > b.sessionId;
}

/**
 * Which live instance tells an orphaned device goodbye when its instance died: one per
 * device (no goodbye storm: each device hears exactly one), the same answer on every
 * instance that sees the same live set, and spread over the survivors by client id.
 */
export function survivorFor(clientId: string, live: readonly number[]): number | undefined {
  if (live.length === 0) return undefined;
  const sorted = [...live].sort((x, y) => x - y);
  return sorted[fnv1a(clientId) % sorted.length];
}

/**
 * Where a new hello opens its session. The broker's hash spreads devices binomially, not
 * evenly (200 devices over 4 instances land within 10% of even in only 23% of random
 * fleets, docs/reliability.md): an instance holding `slack` or more sessions above the
 * least loaded live instance passes the hello on to it. The device's later messages still
 * reach this instance (the broker's pick) and are forwarded to the owner. `slack` 0: never.
 */
export function balanceTarget(
  me: number,
  load: (instanceId: number) => number,
  live: readonly number[],
  slack: number,
  clientId: string,
): number | undefined {
  if (slack <= 0) return undefined;
  const peers = [...live].filter((id) => id !== me).sort((a, b) => a - b);
  if (peers.length === 0) return undefined;
  const least = Math.min(...peers.map(load));
  if (load(me) - least < slack) return undefined;
  // Ties by the client id: in a burst every instance sees the same stale loads, and a
  // fixed tie-break would send all their hellos to the same peer.
  const ties = peers.filter((id) => load(id) === least);
  return ties[fnv1a(clientId) % ties.length];
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
