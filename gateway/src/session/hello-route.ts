/**
 * Where a hello goes (docs/reliability.md, rules 6 and 11): a session opened here, the
 * hello passed on to a peer, or dropped. Pure: the gateway says what it knows.
 */
import type { DropReason } from "../ops/metrics.ts";

/** A hello is passed on by at most two instances: the broker's pick, then a draining one. */
export const MAX_HELLO_HOPS = 2;

export type HelloRoute =
  | { readonly kind: "open" }
  | { readonly kind: "forward"; readonly instanceId: number; readonly hops: number }
  | { readonly kind: "drop"; readonly reason: DropReason };

export interface HelloSituation {
  /** How many instances passed the hello on to this one (0: straight from the broker). */
  readonly hops: number;
  readonly draining: boolean;
  /** A live peer taking hellos, if any. */
  readonly livePeer: () => number | undefined;
  /** The peer balancing passes this hello to (rule 6), if any; it records the pick. */
  readonly lessLoaded: () => number | undefined;
}

export function routeHello(h: HelloSituation): HelloRoute {
  if (h.draining) {
    // A draining instance opens no session: the drain closes only the sessions it found,
    // and peers send no goodbye for the devices of a peer that drained, so a session opened
    // now would leave its device stuck until its 120 s timeout. The hello goes on to a live
    // peer unless two instances passed it on already (two draining peers that each still
    // see the other up must not pass it back and forth).
    const peer = h.hops < MAX_HELLO_HOPS ? h.livePeer() : undefined;
    if (peer === undefined) return { kind: "drop", reason: "mqtt_hello_draining" };
    return { kind: "forward", instanceId: peer, hops: h.hops + 1 };
  }
  // A hello passed on to us opens here: the instance that passed it on did the balancing.
  const peer = h.hops === 0 ? h.lessLoaded() : undefined;
  return peer === undefined ? { kind: "open" } : { kind: "forward", instanceId: peer, hops: 1 };
}
