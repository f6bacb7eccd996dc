/**
 * The claims (docs/reliability.md, rule 2) as this instance takes part in them: each
 * session opened here is claimed on the broker (gateway/claims/<clientid>) with the time
 * its hello arrived, released when it closes, and claimed again when a peer may have
 * missed it; each claim heard from an instance is recorded, and one on a device that also
 * has a session here settles which of the two lives: the later hello's, on every instance.
 */
import type { CloseReason, DropReason } from "../ops/metrics.ts";
import { claimPayload, parseClaim } from "../protocol/coordination.ts";
import type { SessionOwner } from "../protocol/session-id.ts";
import { claimTopic } from "../protocol/topics.ts";
import type { ClaimBook } from "./claim-book.ts";
import { ClaimRepublisher } from "./claim-republish.ts";
import type { DeviceSession } from "./device-session.ts";
import type { HelloBalancer } from "./hello-balancer.ts";
import { type Claim, newerClaim } from "./owner-routing.ts";
import type { SessionRegistry } from "./registry.ts";

export interface SessionClaimsOptions {
  readonly me: SessionOwner;
  /** Every session claim seen on the broker (shared with the gateway and the peer watch). */
  readonly claims: ClaimBook;
  /** Told which instance claimed each device: a hello passed on to it was answered. */
  readonly balancer: HelloBalancer;
  /** This instance's live sessions. */
  readonly sessions: SessionRegistry;
  readonly publish: (topic: string, payload: string) => void;
  /** Closes a session whose device another instance holds by a newer claim. */
  readonly closeClaimedElsewhere: (session: DeviceSession) => void;
  readonly drop: (reason: DropReason, fields: Record<string, unknown>) => void;
  /** Counts each claim a republish pass sends. */
  readonly republished: () => void;
  /** Runs a function on a later turn of the event loop (claim-republish.ts; default setImmediate). */
  readonly defer?: (fn: () => void) => void;
}

export class SessionClaims {
  readonly #o: SessionClaimsOptions;
  /** Each live session's own claim (its hello time orders it against others). */
  readonly #own = new WeakMap<DeviceSession, Claim>();
  readonly #republisher: ClaimRepublisher<DeviceSession>;

  constructor(options: SessionClaimsOptions) {
    this.#o = options;
    this.#republisher = new ClaimRepublisher({
      items: () => options.sessions.all(),
      live: (s) => options.sessions.byClient(s.client.raw) === s,
      publish: (s) => {
        this.#publish(s);
        options.republished();
      },
      defer: options.defer,
    });
  }

  /** A session opened here, for a hello that arrived at `helloAt` (epoch ms): claimed. */
  opened(session: DeviceSession, helloAt: number): void {
    const claim: Claim = {
      instanceId: this.#o.me.instanceId,
      bootId: this.#o.me.bootId,
      sessionId: session.sessionId,
      helloAt,
    };
    this.#own.set(session, claim);
    this.#o.claims.record(session.client.raw, claim);
    this.#publish(session);
  }

  /**
   * A session of this instance closed: every instance is told it is gone (their load
   * counts and orphan lists), unless a newer claim already replaced it.
   */
  closed(session: DeviceSession, reason: CloseReason): void {
    const claim = this.#own.get(session);
    if (claim && reason !== "replaced" && reason !== "claimed_elsewhere") {
      this.#o.claims.release(session.client.raw, session.sessionId);
      this.#o.publish(claimTopic(session.client.raw), claimPayload(claim, true));
    }
  }

  /** When the hello that opened `session` (one of this instance's) arrived, epoch ms. */
  helloAt(session: DeviceSession): number | undefined {
    return this.#own.get(session)?.helloAt;
  }

  /**
   * Publishes the claim of every live session again, soon: requests coalesce, and the
   * claims go out in batches over several turns of the event loop (claim-republish.ts).
   */
  republish(): void {
    this.#republisher.request();
  }

  /** A claim from the broker, this instance's own included. */
  handleClaim(clientId: string, payload: Buffer): void {
    const c = parseClaim(payload);
    if (!c) return this.#o.drop("mqtt_bad_internal", { topic: "claim" });
    if (c.released) return this.#o.claims.release(clientId, c.sessionId);
    this.#o.balancer.claimed(c.instanceId, clientId);
    const claim: Claim = {
      instanceId: c.instanceId,
      bootId: c.bootId,
      sessionId: c.sessionId,
      helloAt: c.helloAt,
    };
    this.#o.claims.record(clientId, claim);
    if (claim.instanceId === this.#o.me.instanceId && claim.bootId === this.#o.me.bootId) return;
    const session = this.#o.sessions.byClient(clientId);
    const ours = session && this.#own.get(session);
    if (!session || !ours || ours.sessionId === claim.sessionId) return;
    // The later hello wins on every instance, whatever order the claims are handled in.
    if (newerClaim(claim, ours)) return this.#o.closeClaimedElsewhere(session);
    // Ours is newer: the other instance may not have seen our claim (it was not subscribed
    // yet, after a broker restart); say it again so it closes its older session.
    this.#publish(session);
  }

  #publish(session: DeviceSession): void {
    const claim = this.#own.get(session);
    if (claim) this.#o.publish(claimTopic(session.client.raw), claimPayload(claim));
  }
}
