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
import { type DeviceClientId, parseDeviceClientId, replyTopic } from "../protocol/client-id.ts";
import {
  type DeviceMessage,
  goodbyeMessage,
  type JsonObject,
  parseDeviceMessage,
} from "../protocol/messages.ts";
import { newSessionId, type SessionOwner } from "../protocol/session-id.ts";
import { CLAIMS_PREFIX, FORWARD_PREFIX, routeTopic } from "../protocol/topics.ts";
import { parseUdpPacket } from "../protocol/udp-packet.ts";
import { DeviceSession } from "./device-session.ts";
import type { RemoteAddress } from "./downstream.ts";
import { HelloBudget, type HelloBudgetOptions } from "./hello-budget.ts";
import { decideOwner, type PeerPresence } from "./owner-routing.ts";
import { RecentForwards } from "./recent-forwards.ts";
import { SessionRegistry } from "./registry.ts";
import { UdpSourceLimiter, type UdpSourceLimits } from "./source-limiter.ts";

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
  /** Per-IP and per-socket UDP rate limits (source-limiter.ts); its defaults when absent. */
  readonly sourceLimit?: UdpSourceLimits;
  /** Hellos per client id (hello-budget.ts); its defaults when absent. */
  readonly helloBudget?: HelloBudgetOptions;
}

export class Gateway {
  readonly sessions = new SessionRegistry();
  readonly peers = new Map<number, PeerPresence>();
  readonly #o: GatewayOptions;
  readonly #limiter = new LogLimiter();
  readonly #closing = new Set<Promise<void>>();
  readonly #recentForwards = new RecentForwards();
  readonly #sources: UdpSourceLimiter;
  readonly #hellos: HelloBudget;
  #draining = false;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#sources = new UdpSourceLimiter(options.sourceLimit);
    this.#hellos = new HelloBudget(options.helloBudget);
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Every message from the broker, whatever its topic. */
  handleBrokerMessage(topic: string, payload: Buffer): void {
    const route = routeTopic(topic);
    if (!route) return this.#drop("mqtt_bad_topic", { topic: topic.slice(0, 120) });
    switch (route.kind) {
      case "ingest":
        return this.#handleDevicePayload(route.clientId, payload, false);
      case "disconnected":
        return this.#handleDisconnected(route.clientId, payload);
      case "presence":
        return this.#handlePresence(route.instanceId, payload);
      case "claim":
        return this.#handleClaim(route.clientId, payload);
      case "forward":
        return this.#handleForward(payload);
    }
  }

  /** Every datagram on the instance's UDP port. */
  handleDatagram(datagram: Buffer, from: RemoteInfo): void {
    const receivedAt = process.hrtime.bigint();
    if (!this.#sources.allow(from.address, from.port)) {
      return this.#drop("udp_rate_limited", { from: from.address });
    }
    const parsed = parseUdpPacket(datagram);
    if (!parsed.ok) return this.#drop(`udp_${parsed.reason}`, { from: from.address });
    const session = this.sessions.byConnection(parsed.packet.header.connectionId);
    if (!session) return this.#drop("udp_unknown_connection", { from: from.address });
    session.handleDatagram(parsed.packet, from, receivedAt);
  }

  /**
   * Stop taking hellos (the caller unsubscribes from the shared ingest first), say goodbye
   * to every device so it re-hellos on another instance, and wait for the sessions to
   * release their resources.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    await Promise.all(this.sessions.all().map((s) => s.close("drain")));
    await Promise.all(this.#closing);
  }

  /** The instance's own presence, retained on the broker. */
  presencePayload(state: "up" | "draining" | "gone", udpPort: number): string {
    return JSON.stringify({ bootId: this.#o.me.bootId, state, udpPort });
  }

  #handleDevicePayload(clientIdRaw: string, payload: Buffer, forwarded: boolean): void {
    const parsedId = parseDeviceClientId(clientIdRaw);
    if (!parsedId.ok) return this.#drop("mqtt_bad_client_id", { clientId: clientIdRaw.slice(0, 80) });
    const parsed = parseDeviceMessage(payload);
    if (!parsed.ok) {
      return this.#drop(`mqtt_${parsed.reason}`, { clientId: clientIdRaw, detail: parsed.detail });
    }
    const message = parsed.message;
    if (message.type === "hello") {
      // Before anything a hello costs; a forwarded hello was charged where it arrived.
      if (!forwarded && !this.#hellos.take(clientIdRaw)) {
        return this.#drop("mqtt_hello_over_budget", { clientId: clientIdRaw });
      }
      if (this.#draining && !forwarded) {
        const target = this.#liveIn(this.#o.me.instanceId);
        if (target !== undefined) return this.#forward(target, clientIdRaw, payload);
      }
      return this.#openSession(parsedId.id.raw, parsedId.id, message);
    }
    const decision = forwarded
      ? { kind: "local" as const }
      : decideOwner(message.sessionId, this.#o.me, this.peers);
    if (decision.kind === "forward") {
      if (message.sessionId !== undefined)
        this.#recentForwards.add(decision.instanceId, clientIdRaw, message.sessionId);
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
  ): void {
    const start = process.hrtime.bigint();
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
    this.#o.ports.publish(
      `${CLAIMS_PREFIX}${clientId}`,
      JSON.stringify({
        instanceId: this.#o.me.instanceId,
        bootId: this.#o.me.bootId,
        sessionId: session.sessionId,
      }),
    );
  }

  #onClosed(session: DeviceSession, reason: CloseReason): void {
    this.sessions.remove(session);
    this.#o.metrics.closed(reason);
    this.#o.metrics.sessions.set(this.sessions.size);
    this.#o.log.debug(
      { clientId: session.client.raw, sessionId: session.sessionId, reason },
      "session closed",
    );
  }

  #handleDisconnected(clientId: string, payload: Buffer): void {
    const reason = safeJson(payload)?.reason;
    // A takeover means the device is already back on a new connection; its session (if
    // the new connection sent hello) must live.
    if (reason === "takenover" || reason === "discarded") return;
    const session = this.sessions.byClient(clientId);
    if (session) this.#track(session.close("mqtt_disconnected"));
  }

  #handlePresence(instanceId: number, payload: Buffer): void {
    if (instanceId === this.#o.me.instanceId) return;
    const p = payload.length === 0 ? { state: "gone" } : safeJson(payload);
    const known = this.peers.get(instanceId);
    if (p?.state === "gone") {
      this.peers.delete(instanceId);
      if (known) this.#goodbyeForwardedTo(instanceId);
      return;
    }
    if (!p || typeof p.bootId !== "string" || (p.state !== "up" && p.state !== "draining")) {
      return this.#drop("mqtt_bad_internal", { topic: "presence" });
    }
    // A new boot of a peer we knew: it crashed and restarted, its sessions are gone.
    if (known && known.bootId !== p.bootId) this.#goodbyeForwardedTo(instanceId);
    this.peers.set(instanceId, { bootId: p.bootId, state: p.state });
  }

  #handleClaim(clientId: string, payload: Buffer): void {
    const claim = safeJson(payload);
    if (!claim || typeof claim.instanceId !== "number")
      return this.#drop("mqtt_bad_internal", { topic: "claim" });
    if (claim.instanceId === this.#o.me.instanceId && claim.bootId === this.#o.me.bootId) return;
    const session = this.sessions.byClient(clientId);
    if (session) this.#track(session.close("claimed_elsewhere"));
  }

  #handleForward(payload: Buffer): void {
    const f = safeJson(payload);
    if (!f || typeof f.clientId !== "string" || typeof f.payload !== "string") {
      return this.#drop("mqtt_bad_internal", { topic: "forward" });
    }
    this.#handleDevicePayload(f.clientId, Buffer.from(f.payload, "utf8"), true);
  }

  #forward(instanceId: number, clientId: string, payload: Buffer): void {
    this.#o.metrics.forwarded.inc();
    this.#o.ports.publish(
      `${FORWARD_PREFIX}${instanceId}`,
      JSON.stringify({ clientId, payload: payload.toString("utf8") }),
    );
  }

  /** A peer died: the messages we forwarded to it in the last seconds were never handled. */
  #goodbyeForwardedTo(instanceId: number): void {
    for (const f of this.#recentForwards.takeRecent(instanceId)) {
      this.#publishToDevice(f.clientId, goodbyeMessage(f.sessionId, "session_unknown"));
    }
  }

  /** No live session for this message: goodbye now, so the device re-hellos at once. */
  #stale(clientId: string, sessionId: string | undefined): void {
    this.#drop(sessionId === undefined ? "mqtt_no_session" : "mqtt_stale_session", { clientId });
    if (sessionId !== undefined)
      this.#publishToDevice(clientId, goodbyeMessage(sessionId, "session_unknown"));
  }

  /** A live peer other than `except` that is taking hellos, if any. */
  #liveIn(except: number): number | undefined {
    for (const [id, p] of this.peers) if (id !== except && p.state === "up") return id;
    return undefined;
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

function safeJson(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString("utf8"));
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
