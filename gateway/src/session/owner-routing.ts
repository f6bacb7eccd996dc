/**
 * Who handles a device's follow-up message (architecture.md section 3.2). The broker
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
