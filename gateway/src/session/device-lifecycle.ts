/**
 * The broker's `lifecycle/disconnected/<clientid>` events (docs/broker-contract.md, row 4)
 * as this instance acts on them: the session a device's ended connection leaves behind is
 * closed, and a plain disconnect forgets the device's claim.
 *
 * The broker retains each device's last event, with the time it happened, for the idle
 * timeout: an instance whose own broker connection was down when it went out hears it
 * when it subscribes again, and the sessions that event outdated end then instead of
 * idling until their timeout (docs/reliability.md, rule 3, "Takeovers"). So an event can
 * be older than a session or claim of the device's next connection, and acts only on
 * what its time says came before it.
 */
import type { Logger } from "../ops/log.ts";
import type { GatewayMetrics } from "../ops/metrics.ts";
import { parseDisconnectEvent } from "../protocol/coordination.ts";
import type { ClaimBook } from "./claim-book.ts";
import type { DeviceSession } from "./device-session.ts";
import type { SessionRegistry } from "./registry.ts";
import { isTakeover, openedBeforeTakeover } from "./takeover.ts";

export interface DeviceLifecycleOptions {
  readonly sessions: SessionRegistry;
  /** Every session claim seen on the broker. */
  readonly claims: ClaimBook;
  /** When the hello that opened one of this instance's sessions arrived, epoch ms. */
  readonly helloAt: (session: DeviceSession) => number | undefined;
  readonly close: (session: DeviceSession, reason: "mqtt_takenover" | "mqtt_disconnected") => void;
  readonly metrics: Pick<GatewayMetrics, "deviceTakeovers">;
  readonly log: Logger;
}

export class DeviceLifecycle {
  readonly #o: DeviceLifecycleOptions;

  constructor(options: DeviceLifecycleOptions) {
    this.#o = options;
  }

  /** An event that reached this process at `arrivedAt` (epoch ms). */
  handleDisconnected(clientId: string, payload: Buffer, arrivedAt: number): void {
    const event = parseDisconnectEvent(payload);
    // The broker's own time: a retained event heard after our reconnect arrives late.
    const eventAt = event.at ?? arrivedAt;
    // A takeover means the device is back on a new connection: the claims stay (a new
    // session may be claimed already), and only a session of the old connection ends.
    if (isTakeover(event.reason)) return this.#takenOver(clientId, eventAt);
    const claim = this.#o.claims.get(clientId);
    if (claim && claim.helloAt <= eventAt) this.#o.claims.forget(clientId);
    const session = this.#o.sessions.byClient(clientId);
    if (!session) return;
    const helloAt = this.#o.helloAt(session);
    if (helloAt !== undefined && helloAt > eventAt) {
      // A later connection's session (the event was heard again on a resubscribe).
      return this.#o.log.debug(
        { clientId, sessionId: session.sessionId },
        "disconnect before the session kept",
      );
    }
    this.#o.close(session, "mqtt_disconnected");
  }

  /** The device's connection was taken over (takeover.ts) at `eventAt`. */
  #takenOver(clientId: string, eventAt: number): void {
    const session = this.#o.sessions.byClient(clientId);
    const helloAt = session && this.#o.helloAt(session);
    if (!session || helloAt === undefined)
      return this.#o.metrics.deviceTakeovers.inc({ outcome: "no_session" });
    if (!openedBeforeTakeover(helloAt, eventAt)) {
      this.#o.metrics.deviceTakeovers.inc({ outcome: "kept_recent" });
      return this.#o.log.info({ clientId, sessionId: session.sessionId }, "takeover: recent session kept");
    }
    this.#o.metrics.deviceTakeovers.inc({ outcome: "closed" });
    this.#o.close(session, "mqtt_takenover");
  }
}
