/**
 * The gateway's core: broker messages and UDP datagrams in, sessions opened, routed and
 * closed. No sockets here: the I/O adapters are injected (app.ts wires the real ones).
 */
import type { RemoteInfo } from "node:dgram";
import type { AgentFactory } from "../agent/agent-bridge.ts";
import type { OpusPool } from "../audio/opus-pool.ts";
import type { Logger } from "../ops/log.ts";
import { LogLimiter } from "../ops/log.ts";
import type { CloseReason, DropReason, GatewayMetrics } from "../ops/metrics.ts";
import { type DeviceClientId, parseDeviceClientId } from "../protocol/client-id.ts";
import {
  forwardPayload,
  type PresenceState,
  parseDisconnectReason,
  parseForward,
  presencePayload,
} from "../protocol/coordination.ts";
import {
  type DeviceMessage,
  goodbyeMessage,
  type JsonObject,
  MAX_DEVICE_MESSAGE_BYTES,
  parseDeviceMessage,
} from "../protocol/messages.ts";
import { newSessionId, type SessionOwner } from "../protocol/session-id.ts";
import { forwardTopic, presenceTopic, replyTopic, routeTopic } from "../protocol/topics.ts";
import { parseUdpPacket } from "../protocol/udp-packet.ts";
import { ClaimBook } from "./claim-book.ts";
import { DeviceSession } from "./device-session.ts";
import type { RemoteAddress } from "./downstream.ts";
import { HelloBalancer } from "./hello-balancer.ts";
import { HelloBudget, type HelloBudgetOptions } from "./hello-budget.ts";
import { routeHello } from "./hello-route.ts";
import { decideOwner, type PeerPresence } from "./owner-routing.ts";
import { PeerWatch } from "./peer-watch.ts";
import { SessionRegistry } from "./registry.ts";
import { SessionClaims } from "./session-claims.ts";
import { UdpSourceLimiter, type UdpSourceLimits } from "./source-limiter.ts";
import { isTakeover, openedBeforeTakeover } from "./takeover.ts";
import type { StartTimer } from "./timer.ts";

export interface GatewayPorts {
  publish(topic: string, payload: string, retain?: boolean): void;
  sendUdp(datagram: Buffer, to: RemoteAddress): void;
}

export interface GatewayOptions {
  readonly me: SessionOwner;
  readonly publicHost: string;
  readonly udpPort: number;
  readonly idleTimeoutMs: number;
  readonly maxSessionMs: number;
  readonly pool: OpusPool;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly agentFactory: AgentFactory;
  readonly ports: GatewayPorts;
  /** The live sessions; made here when absent (app.ts shares it with the ghost-room sweep). */
  readonly sessions?: SessionRegistry;
  /** Per-IP and per-socket UDP rate limits (source-limiter.ts); its defaults when absent. */
  readonly sourceLimit?: UdpSourceLimits;
  /** Hellos per client id (hello-budget.ts); its defaults when absent. */
  readonly helloBudget?: HelloBudgetOptions;
  /** The sessions' idle and max-duration timers (timer.ts); Node's when absent. */
  readonly startTimer?: StartTimer;
  /** Wall clock, epoch ms (claims compare hello times across the instances of one host). */
  readonly now?: () => number;
  /**
   * The earliest time the message being handled can have reached this process, epoch ms.
   * Default `now()`; app.ts passes the last event-loop turn when the loop was stalled,
   * because a message read after a stall may have waited in the socket all along.
   */
  readonly arrivedAt?: () => number;
  /** A hello handled later than this after it arrived is not answered (default 5000 ms). */
  readonly helloMaxWaitMs?: number;
  /** Pass a hello on when holding this many sessions above the least loaded instance; 0 never (default 2). */
  readonly balanceSlack?: number;
}

/** The firmware waits 10 s for a hello reply; one that took 5 s to reach our handler is suspect. */
export const DEFAULT_HELLO_MAX_WAIT_MS = 5000;

export class Gateway {
  readonly sessions: SessionRegistry;
  readonly #o: GatewayOptions;
  readonly #limiter = new LogLimiter();
  readonly #closing = new Set<Promise<void>>();
  readonly #claims = new ClaimBook();
  readonly #sessionClaims: SessionClaims;
  readonly #sources: UdpSourceLimiter;
  readonly #hellos: HelloBudget;
  readonly #balancer: HelloBalancer;
  readonly #peers: PeerWatch;
  readonly #now: () => number;
  readonly #arrivedAt: () => number;
  #draining = false;
  /**
   * The sessions live when the broker connection last dropped: the ones whose claims the
   * peers held if that drop sent out our will (a session opened since was claimed after it).
   */
  #heldAtDisconnect = new WeakSet<DeviceSession>();

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.sessions = options.sessions ?? new SessionRegistry();
    this.#sources = new UdpSourceLimiter(options.sourceLimit);
    this.#hellos = new HelloBudget(options.helloBudget);
    this.#now = options.now ?? Date.now;
    this.#arrivedAt = options.arrivedAt ?? this.#now;
    this.#balancer = new HelloBalancer(options.balanceSlack ?? 2);
    this.#sessionClaims = new SessionClaims({
      me: options.me,
      claims: this.#claims,
      balancer: this.#balancer,
      sessions: this.sessions,
      publish: (topic, payload) => options.ports.publish(topic, payload),
      closeClaimedElsewhere: (session) => this.#track(session.close("claimed_elsewhere")),
      drop: (reason, fields) => this.#drop(reason, fields),
      republished: () => options.metrics.claimsRepublished.inc(),
    });
    this.#peers = new PeerWatch({
      me: options.me,
      claims: this.#claims,
      balancer: this.#balancer,
      metrics: options.metrics,
      log: options.log,
      draining: () => this.#draining,
      publishToDevice: (clientId, message) => this.#publishToDevice(clientId, message),
      republishClaims: () => this.republishClaims(),
      republishPresence: () =>
        options.ports.publish(
          presenceTopic(options.me.instanceId),
          this.presencePayload("up", options.udpPort),
          true,
        ),
      endOrphanedSessions: () => {
        for (const s of this.sessions.all())
          if (this.#heldAtDisconnect.has(s)) this.#track(s.close("orphaned"));
      },
      drop: (reason, fields) => this.#drop(reason, fields),
    });
  }

  /** The live peer instances, as their presence said. */
  get peers(): ReadonlyMap<number, PeerPresence> {
    return this.#peers.peers;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Every message from the broker, whatever its topic; `arrivedAt`: see GatewayOptions. */
  handleBrokerMessage(topic: string, payload: Buffer, arrivedAt = this.#arrivedAt()): void {
    const route = routeTopic(topic);
    if (!route) return this.#drop("mqtt_bad_topic", { topic: topic.slice(0, 120) });
    switch (route.kind) {
      case "ingest":
        return this.#handleDevicePayload(route.clientId, payload, 0, arrivedAt);
      case "disconnected":
        return this.#handleDisconnected(route.clientId, payload, arrivedAt);
      case "presence":
        return this.#peers.handlePresence(route.instanceId, payload);
      case "claim":
        return this.#sessionClaims.handleClaim(route.clientId, payload);
      case "forward":
        return this.#handleForward(payload);
    }
  }

  /** Every datagram on the instance's UDP port. */
  handleDatagram(datagram: Buffer, from: RemoteInfo): void {
    const receivedAt = process.hrtime.bigint();
    // No reply reaches source port 0 (send() refuses it): such a source is never pinned.
    if (from.port === 0) return this.#drop("udp_source_port_zero", { from: from.address });
    if (!this.#sources.allow(from.address, from.port)) {
      return this.#drop("udp_rate_limited", { from: from.address });
    }
    const parsed = parseUdpPacket(datagram);
    if (!parsed.ok) return this.#drop(`udp_${parsed.reason}`, { from: from.address });
    const session = this.sessions.byConnection(parsed.packet.header.connectionId);
    if (!session) return this.#drop("udp_unknown_connection", { from: from.address });
    session.handleDatagram(parsed.packet, from, receivedAt);
  }

  /** From now on open no session; /readyz answers 503 (the drain's first step: ops/drain.ts). */
  markDraining(): void {
    this.#draining = true;
  }

  /**
   * Stop taking hellos (the caller unsubscribes from the shared ingest first), say goodbye
   * to every device so it re-hellos on another instance, and wait for the sessions to
   * release their resources. A hello that reaches us from now on (one in flight, or one a
   * peer passes on before it sees our "draining") opens no session (hello-route.ts).
   */
  async drain(): Promise<void> {
    this.markDraining();
    await Promise.all(this.sessions.all().map((s) => s.close("drain")));
    await Promise.all(this.#closing);
  }

  /** The instance's own presence, retained on the broker. */
  presencePayload(state: PresenceState, udpPort: number): string {
    return presencePayload(this.#o.me.bootId, state, udpPort);
  }

  /** The broker connection dropped (the client reconnects by itself). */
  brokerDisconnected(): void {
    this.#heldAtDisconnect = new WeakSet(this.sessions.all());
  }

  /**
   * Publishes the claim of every live session again (soon, batched: session-claims.ts).
   * After a broker reconnect, ours or a peer's: claims published while a peer was not
   * subscribed were lost, and a peer may hold a newer session for one of our devices (or
   * we one of its); the claims settle who keeps it.
   */
  republishClaims(): void {
    this.#sessionClaims.republish();
  }

  /** `hops`: how many instances passed the message on to us (0: straight from the broker). */
  #handleDevicePayload(clientIdRaw: string, payload: Buffer, hops: number, arrivedAt: number): void {
    const parsedId = parseDeviceClientId(clientIdRaw);
    if (!parsedId.ok) return this.#drop("mqtt_bad_client_id", { clientId: clientIdRaw.slice(0, 80) });
    // Passed on by a peer: the device's bytes were within the limit there (messages.ts).
    const parsed = parseDeviceMessage(
      payload,
      hops > 0 ? 3 * MAX_DEVICE_MESSAGE_BYTES : MAX_DEVICE_MESSAGE_BYTES,
    );
    if (!parsed.ok) {
      return this.#drop(`mqtt_${parsed.reason}`, { clientId: clientIdRaw, detail: parsed.detail });
    }
    const message = parsed.message;
    if (message.type === "hello") {
      // Before anything a hello costs; a forwarded hello was charged where it arrived.
      if (hops === 0 && !this.#hellos.take(clientIdRaw)) {
        return this.#drop("mqtt_hello_over_budget", { clientId: clientIdRaw });
      }
      const route = routeHello({
        hops,
        draining: this.#draining,
        livePeer: () => this.#peers.liveExcept(this.#o.me.instanceId),
        lessLoaded: () => this.#lessLoaded(clientIdRaw),
      });
      if (route.kind === "drop") return this.#drop(route.reason, { clientId: clientIdRaw, hops });
      if (route.kind === "forward")
        return this.#forward(route.instanceId, clientIdRaw, payload, arrivedAt, route.hops);
      return this.#openSession(parsedId.id.raw, parsedId.id, message, arrivedAt);
    }
    const decision =
      hops > 0 ? { kind: "local" as const } : decideOwner(message.sessionId, this.#o.me, this.#peers.peers);
    if (decision.kind === "forward") {
      if (message.sessionId !== undefined)
        this.#peers.forwarded(decision.instanceId, clientIdRaw, message.sessionId);
      return this.#forward(decision.instanceId, clientIdRaw, payload);
    }
    if (decision.kind === "stale") return this.#stale(clientIdRaw, message.sessionId);
    const session = this.sessions.byClient(clientIdRaw);
    if (!session || (message.sessionId !== undefined && message.sessionId !== session.sessionId)) {
      return this.#stale(clientIdRaw, message.sessionId);
    }
    this.#o.metrics.deviceMessages.inc({ type: message.type });
    session.handleMessage(message);
  }

  #openSession(
    clientId: string,
    client: DeviceClientId,
    hello: Extract<DeviceMessage, { type: "hello" }>,
    arrivedAt: number,
  ): void {
    const start = process.hrtime.bigint();
    // A hello that sat unhandled for seconds (this process was stalled or stopped): the
    // device has given up on it or sent another one; answering now would only open a
    // session it ignores, whose claim could end the one it opened meanwhile.
    const waited = this.#now() - arrivedAt;
    if (waited > (this.#o.helloMaxWaitMs ?? DEFAULT_HELLO_MAX_WAIT_MS)) {
      return this.#drop("mqtt_hello_too_late", { clientId, waitedMs: waited });
    }
    // Another instance already opened a session for a later hello of this device.
    const latest = this.#claims.get(clientId);
    if (latest && latest.helloAt > arrivedAt && latest.instanceId !== this.#o.me.instanceId) {
      return this.#drop("mqtt_hello_superseded", { clientId });
    }
    // A second hello replaces the session: new key, new connection id, sequences from 0.
    const previous = this.sessions.byClient(clientId);
    if (previous) this.#track(previous.close("replaced"));
    const session = new DeviceSession(
      {
        pool: this.#o.pool,
        metrics: this.#o.metrics,
        agentFactory: this.#o.agentFactory,
        publicHost: this.#o.publicHost,
        udpPort: this.#o.udpPort,
        idleTimeoutMs: this.#o.idleTimeoutMs,
        maxSessionMs: this.#o.maxSessionMs,
        startTimer: this.#o.startTimer,
        sendUdp: (d, to) => this.#o.ports.sendUdp(d, to),
        publishToDevice: (id, message) => this.#publishToDevice(id, message),
        onClosed: (s, reason) => this.#onClosed(s, reason),
        warn: (key, msg, fields) => this.#warn(key, msg, fields),
      },
      client,
      newSessionId(this.#o.me),
      this.sessions.allocateConnectionId(),
      hello.audio,
    );
    this.sessions.add(session);
    // Reply first (the device waits at most 10 s); everything slow comes after.
    session.sendHelloReply();
    this.#o.metrics.helloReply.observe(Number(process.hrtime.bigint() - start) / 1e9);
    this.#o.metrics.sessionsOpened.inc();
    this.#o.metrics.sessions.set(this.sessions.size);
    this.#sessionClaims.opened(session, arrivedAt);
  }

  #onClosed(session: DeviceSession, reason: CloseReason): void {
    this.sessions.remove(session);
    this.#sessionClaims.closed(session, reason);
    this.#o.metrics.closed(reason);
    this.#o.metrics.sessions.set(this.sessions.size);
    this.#o.log.debug(
      { clientId: session.client.raw, sessionId: session.sessionId, reason },
      "session closed",
    );
  }

  #handleDisconnected(clientId: string, payload: Buffer, arrivedAt: number): void {
    const reason = parseDisconnectReason(payload);
    // A takeover means the device is back on a new connection: the claims stay (a new
    // session may be claimed already), and only a session of the old connection ends.
    if (isTakeover(reason)) return this.#takenOver(clientId, arrivedAt);
    this.#claims.forget(clientId);
    const session = this.sessions.byClient(clientId);
    if (session) this.#track(session.close("mqtt_disconnected"));
  }

  /** The device's connection was taken over (takeover.ts); the event arrived at `eventAt`. */
  #takenOver(clientId: string, eventAt: number): void {
    const session = this.sessions.byClient(clientId);
    const helloAt = session && this.#sessionClaims.helloAt(session);
    if (!session || helloAt === undefined)
      return this.#o.metrics.deviceTakeovers.inc({ outcome: "no_session" });
    if (!openedBeforeTakeover(helloAt, eventAt)) {
      this.#o.metrics.deviceTakeovers.inc({ outcome: "kept_recent" });
      return this.#o.log.info({ clientId, sessionId: session.sessionId }, "takeover: recent session kept");
    }
    this.#o.metrics.deviceTakeovers.inc({ outcome: "closed" });
    this.#track(session.close("mqtt_takenover"));
  }

  #handleForward(payload: Buffer): void {
    const f = parseForward(payload);
    if (!f) return this.#drop("mqtt_bad_internal", { topic: "forward" });
    // A hello passed on by a draining or busier peer keeps the time it reached the first instance.
    const arrivedAt = f.arrivedAt ?? this.#arrivedAt();
    this.#handleDevicePayload(f.clientId, Buffer.from(f.payload, "utf8"), f.hops, arrivedAt);
  }

  #forward(instanceId: number, clientId: string, payload: Buffer, arrivedAt?: number, hops = 1): void {
    this.#o.metrics.forwarded.inc();
    this.#o.ports.publish(forwardTopic(instanceId), forwardPayload(clientId, payload, arrivedAt, hops));
  }

  /** No live session for this message: goodbye now, so the device re-hellos at once. */
  #stale(clientId: string, sessionId: string | undefined): void {
    this.#drop(sessionId === undefined ? "mqtt_no_session" : "mqtt_stale_session", { clientId });
    if (sessionId !== undefined)
      this.#publishToDevice(clientId, goodbyeMessage(sessionId, "session_unknown"));
  }

  /** A live peer with enough fewer sessions than this instance to take this hello. */
  #lessLoaded(clientId: string): number | undefined {
    const me = { instanceId: this.#o.me.instanceId, sessions: this.sessions.size };
    return this.#balancer.pick(clientId, me, this.#peers.peers, this.#claims, this.#now());
  }

  #publishToDevice(clientId: string, message: JsonObject): void {
    this.#o.ports.publish(replyTopic(clientId), JSON.stringify(message));
  }

  #track(closing: Promise<void>): void {
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  #drop(reason: DropReason, fields: Record<string, unknown>): void {
    this.#o.metrics.drop(reason);
    this.#warn(reason, "input dropped", { reason, ...fields });
  }

  #warn(key: string, message: string, fields: Record<string, unknown> = {}): void {
    this.#limiter.run(key, (suppressed) =>
      this.#o.log.warn(suppressed > 0 ? { ...fields, suppressedBefore: suppressed } : fields, message),
    );
  }
}
