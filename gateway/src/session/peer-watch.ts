/**
 * What this instance knows of its peers (the other gateway instances on the broker) from
 * their retained presence and wills, and what it does when one dies or restarts: the
 * devices whose sessions died with it are told goodbye, so that a device that only streams
 * UDP re-hellos at once instead of after its 120 s liveness timeout.
 *
 * Two kinds of such devices: those whose session the dead boot held (its claims, told
 * goodbye by exactly one live instance each), and those whose messages this instance
 * forwarded to it in the last seconds (recent-forwards.ts).
 */
import type { Logger } from "../ops/log.ts";
import type { DropReason, GatewayMetrics } from "../ops/metrics.ts";
import { type PresenceMessage, parsePresence } from "../protocol/coordination.ts";
import { goodbyeMessage, type JsonObject } from "../protocol/messages.ts";
import type { SessionOwner } from "../protocol/session-id.ts";
import type { ClaimBook } from "./claim-book.ts";
import type { HelloBalancer } from "./hello-balancer.ts";
import { type PeerPresence, survivorFor } from "./owner-routing.ts";
import { RecentForwards } from "./recent-forwards.ts";

export interface PeerWatchOptions {
  readonly me: SessionOwner;
  /** Every session claim seen on the broker (shared with the gateway, which records them). */
  readonly claims: ClaimBook;
  /** Forgets what it knew of a peer's load when the peer is gone or has a new boot. */
  readonly balancer: HelloBalancer;
  readonly metrics: Pick<GatewayMetrics, "orphanGoodbyes">;
  readonly log: Logger;
  /** This instance is draining: it takes no part in saying goodbye for a dead peer. */
  readonly draining: () => boolean;
  readonly publishToDevice: (clientId: string, message: JsonObject) => void;
  /** Publishes the claim of every live session of this instance again. */
  readonly republishClaims: () => void;
  /** Publishes this instance's presence ("up", retained) again. */
  readonly republishPresence: () => void;
  /** Ends every session of this instance: its peers took them for dead (our own will). */
  readonly endOrphanedSessions: () => void;
  readonly drop: (reason: DropReason, fields: Record<string, unknown>) => void;
}

export class PeerWatch {
  readonly #o: PeerWatchOptions;
  readonly #peers = new Map<number, PeerPresence>();
  readonly #recentForwards = new RecentForwards();

  constructor(options: PeerWatchOptions) {
    this.#o = options;
  }

  /** The live peers by instance id, as their last presence said. */
  get peers(): ReadonlyMap<number, PeerPresence> {
    return this.#peers;
  }

  /** A message of this session was forwarded to `instanceId`: remembered for a few seconds. */
  forwarded(instanceId: number, clientId: string, sessionId: string): void {
    this.#recentForwards.add(instanceId, clientId, sessionId);
  }

  /** A live peer other than `except` that is taking hellos, if any. */
  liveExcept(except: number): number | undefined {
    for (const [id, p] of this.#peers) if (id !== except && p.state === "up") return id;
    return undefined;
  }

  /** A peer's retained presence, or its will ("gone"). */
  handlePresence(instanceId: number, payload: Buffer): void {
    const p = parsePresence(payload);
    if (instanceId === this.#o.me.instanceId) return this.#ownPresence(p);
    const known = this.#peers.get(instanceId);
    // The will of a boot other than the one we know (the previous boot, whose death the
    // broker noticed after its successor came up): only that boot died. Its sessions'
    // devices are told goodbye; the live boot stays, with what we know of its load. Each
    // boot has its own will, so the known boot is removed by its own "gone".
    if (p?.state === "gone" && known && p.bootId !== undefined && p.bootId !== known.bootId) {
      return this.#goodbyeOrphans(instanceId, { deadBoot: p.bootId });
    }
    if (!known || !p || known.bootId !== p.bootId) this.#o.balancer.forgetPeer(instanceId);
    if (p?.state === "gone") {
      this.#peers.delete(instanceId);
      if (known) this.#goodbyeForwardedTo(instanceId);
      const deadBoot = p.bootId ?? known?.bootId;
      // A peer that drained said goodbye to its devices itself.
      if (deadBoot !== undefined && known?.state !== "draining")
        this.#goodbyeOrphans(instanceId, { deadBoot });
      return;
    }
    if (!p || p.bootId === undefined) return this.#o.drop("mqtt_bad_internal", { topic: "presence" });
    // A new boot of a peer we knew: it crashed and restarted, its sessions are gone.
    if (known && known.bootId !== p.bootId) this.#goodbyeForwardedTo(instanceId);
    this.#peers.set(instanceId, { bootId: p.bootId, state: p.state });
    // A presence goes out once its peer has subscribed: on its start and on every
    // reconnect. A peer that just started has none of the claims made before it
    // subscribed; one back from a broker restart missed those we made (or sent again
    // after our own reconnect) before it had subscribed again. It may be the survivor
    // chosen to say goodbye for some of them, and it counts our load by them (a draining
    // peer is neither, unless it is a boot we did not know).
    if (p.state === "up" || !known || known.bootId !== p.bootId) this.#o.republishClaims();
    // Any claim of an earlier boot of this peer is a session that died with that boot
    // (also when we never saw the peer's will: it restarted before we heard of it).
    this.#goodbyeOrphans(instanceId, { liveBoot: p.bootId });
  }

  /**
   * Our own presence topic. A will of an earlier boot of this instance, published after we
   * came up, leaves the retained presence saying "gone" while we live: instances that start
   * later would not know us (no forwards to our sessions, no balancing to us). Say "up" again.
   * Not while draining: we are leaving, and the drain ends by publishing our own "gone".
   *
   * "gone" for our own boot while we are not draining is our own will: the broker dropped
   * our connection (a network fault) and we are back. It may have gone out after our new
   * connection said "up" (a takeover of the old connection), so "up" again. Every live peer
   * took our sessions for dead and one of them told each device goodbye (rule 3): those
   * devices closed their channels, so our sessions end here too instead of idling on,
   * claimed, with agents still talking to devices that moved on. With no live peer nobody
   * told the devices anything, and the sessions stay.
   */
  #ownPresence(p: PresenceMessage | undefined): void {
    if (p?.state !== "gone" || this.#o.draining()) return;
    this.#o.republishPresence();
    if (p.bootId === this.#o.me.bootId && this.liveExcept(this.#o.me.instanceId) !== undefined)
      this.#o.endOrphanedSessions();
  }

  /** The sessions of a dead boot of `instanceId`, each told goodbye by exactly one live instance (survivorFor). */
  #goodbyeOrphans(instanceId: number, boot: { deadBoot: string } | { liveBoot: string }): void {
    const orphans = this.#o.claims.takeOrphans(instanceId, boot);
    if (orphans.length === 0) return;
    const me = this.#o.me.instanceId;
    const live = [...this.#peers]
      .filter(([id, p]) => id !== instanceId && p.state === "up")
      .map(([id]) => id);
    if (!this.#o.draining()) live.push(me);
    let sent = 0;
    for (const o of orphans) {
      if (survivorFor(o.clientId, live) !== me) continue;
      this.#o.publishToDevice(o.clientId, goodbyeMessage(o.sessionId, "session_unknown"));
      this.#o.metrics.orphanGoodbyes.inc();
      sent++;
    }
    this.#o.log.info({ instanceId, orphans: orphans.length, goodbyesSent: sent }, "orphaned sessions");
  }

  /** A peer died: the messages we forwarded to it in the last seconds were never handled. */
  #goodbyeForwardedTo(instanceId: number): void {
    for (const f of this.#recentForwards.takeRecent(instanceId)) {
      this.#o.publishToDevice(f.clientId, goodbyeMessage(f.sessionId, "session_unknown"));
    }
  }
}
