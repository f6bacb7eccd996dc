/**
 * One device's audio channel, from its hello to its close: the UDP crypto and sequence
 * state, the pinned Opus streams, the agent, and every timer. `close()` releases all of it
 * and says `goodbye` with the session id, whatever the reason.
 */
import type { RemoteInfo } from "node:dgram";
import type { AgentBridge, AgentFactory } from "../agent/agent-bridge.ts";
import type { OpusPool, OpusStream } from "../audio/opus-pool.ts";
import type { CloseReason, GatewayMetrics } from "../ops/metrics.ts";
import { openAudioPacket } from "../protocol/audio-packet.ts";
import type { DeviceClientId } from "../protocol/client-id.ts";
import { newSessionKey } from "../protocol/crypto.ts";
import {
  type DeviceAudioParams,
  type DeviceMessage,
  goodbyeMessage,
  helloReply,
  type JsonObject,
  ttsMessage,
} from "../protocol/messages.ts";
import { checkOpusPacket } from "../protocol/opus-packet.ts";
import { headerTemplate, type UdpPacket } from "../protocol/udp-packet.ts";
import { DOWN_RATE, Downstream, type RemoteAddress } from "./downstream.ts";

/**
 * Largest forward jump of the upstream sequence we accept (~2 minutes of 60 ms frames).
 * Without it one forged packet with sequence 2^32-1 would make every later genuine packet
 * look like a replay.
 */
export const MAX_SEQUENCE_JUMP = 2000;

/** The longest an inactivity close waits for the agent's goodbye (BUNNY: 30 s). */
export const FAREWELL_CAP_MS = 30_000;

export interface SessionDeps {
  readonly pool: OpusPool;
  readonly metrics: GatewayMetrics;
  readonly agentFactory: AgentFactory;
  readonly publicHost: string;
  readonly udpPort: number;
  readonly idleTimeoutMs: number;
  readonly maxSessionMs: number;
  sendUdp(datagram: Buffer, to: RemoteAddress): void;
  publishToDevice(clientId: string, message: JsonObject): void;
  /** Called once, when the session closes (before the agent has finished closing). */
  onClosed(session: DeviceSession, reason: CloseReason): void;
  warn(key: string, message: string, fields?: Record<string, unknown>): void;
}

export type SessionState = "open" | "streaming" | "closed";

export class DeviceSession {
  readonly client: DeviceClientId;
  readonly sessionId: string;
  readonly connectionId: number;
  readonly createdAt = Date.now();
  readonly #deps: SessionDeps;
  readonly #key = newSessionKey();
  readonly #audio: DeviceAudioParams;
  readonly #decoder: OpusStream;
  readonly #encoder: OpusStream;
  readonly #agent: AgentBridge;
  readonly #downstream: Downstream;
  readonly #idleTimer: NodeJS.Timeout;
  readonly #maxTimer: NodeJS.Timeout;
  #remote: RemoteAddress | undefined;
  #lastUpstreamSeq = 0;
  #state: SessionState = "open";
  #farewell = false;

  constructor(
    deps: SessionDeps,
    client: DeviceClientId,
    sessionId: string,
    connectionId: number,
    audio: DeviceAudioParams,
  ) {
    this.#deps = deps;
    this.client = client;
    this.sessionId = sessionId;
    this.connectionId = connectionId;
    this.#audio = audio;
    this.#decoder = deps.pool.openDecoder(audio.sampleRate);
    this.#encoder = deps.pool.openEncoder(DOWN_RATE);
    this.#downstream = new Downstream({
      pool: deps.pool,
      encoder: this.#encoder,
      key: this.#key,
      connectionId,
      startedAt: this.createdAt,
      metrics: deps.metrics,
      remote: () => this.#remote,
      sendUdp: (d, to) => deps.sendUdp(d, to),
      sendTts: (state, text) => this.#publish(ttsMessage(sessionId, state, text)),
    });
    this.#agent = deps.agentFactory(
      { sessionId, clientId: client.raw, mac: client.mac },
      {
        speechStart: (text) => this.#downstream.speechStart(text),
        audio: (pcm) => this.#downstream.audio(pcm),
        speechEnd: () => this.#downstream.speechEnd(),
        sendToDevice: (message) => this.#publish({ ...message, session_id: sessionId }),
        endSession: (reason) => void this.close(reason),
      },
    );
    this.#idleTimer = setTimeout(() => void this.#inactive(), deps.idleTimeoutMs);
    this.#maxTimer = setTimeout(() => void this.close("max_duration"), deps.maxSessionMs);
  }

  get state(): SessionState {
    return this.#state;
  }

  get remote(): RemoteAddress | undefined {
    return this.#remote;
  }

  get worker(): number {
    return this.#decoder.worker;
  }

  get speaking(): boolean {
    return this.#downstream.speaking;
  }

  get downstreamSequence(): number {
    return this.#downstream.sequence;
  }

  /** The reply to the device's hello; the device derives its UDP header from `nonce`. */
  helloReply(): JsonObject {
    return helloReply({
      sessionId: this.sessionId,
      udpServer: this.#deps.publicHost,
      udpPort: this.#deps.udpPort,
      key: this.#key,
      nonce: headerTemplate(this.connectionId),
    });
  }

  sendHelloReply(): void {
    this.#publish(this.helloReply());
  }

  /**
   * An upstream datagram whose connection id is ours. Nothing a packet says is trusted
   * until it decrypts to a plausible Opus frame with a newer sequence; only then may it
   * move the session's remote address (so a forged packet cannot redirect our audio).
   */
  handleDatagram(packet: UdpPacket, from: RemoteInfo, receivedAt: bigint): void {
    if (this.#state === "closed") return;
    const seq = packet.header.sequence;
    if (seq <= this.#lastUpstreamSeq) {
      this.#deps.metrics.drop("udp_replay");
      return;
    }
    // The first packet after a hello too: firmware numbers from 1, so a first sequence far
    // beyond MAX_SEQUENCE_JUMP is forged (and would make every genuine packet a replay).
    if (seq - this.#lastUpstreamSeq > MAX_SEQUENCE_JUMP) {
      this.#deps.metrics.drop("udp_sequence_jump");
      return;
    }
    const opus = openAudioPacket(this.#key, packet);
    if (checkOpusPacket(opus, this.#audio.frameDurationMs) !== undefined) {
      this.#deps.metrics.drop("udp_bad_opus");
      return;
    }
    this.#lastUpstreamSeq = seq;
    const moved =
      this.#remote === undefined || this.#remote.address !== from.address || this.#remote.port !== from.port;
    if (this.#agent.pushOpus) {
      // Passed through undecoded: the Opus sanity check above is all the proof we get.
      if (moved) this.#remote = { address: from.address, port: from.port };
      this.#state = "streaming";
      this.#idleTimer.refresh();
      this.#deps.metrics.frameUp();
      this.#agent.pushOpus({
        opus,
        durationMs: this.#audio.frameDurationMs,
        sampleRate: this.#audio.sampleRate,
      });
      this.#deps.metrics.upstreamLatency.observe(Number(process.hrtime.bigint() - receivedAt) / 1e9);
      return;
    }
    this.#deps.pool.decode(this.#decoder, opus).then(
      (pcm) => {
        if (this.#state === "closed") return;
        // The address moves only for a packet that libopus accepted and that is still the
        // newest: a NAT rebinding moves it, a forged packet does not.
        if (moved && seq === this.#lastUpstreamSeq) this.#remote = { address: from.address, port: from.port };
        this.#state = "streaming";
        this.#idleTimer.refresh();
        this.#deps.metrics.frameUp();
        this.#agent.pushAudio(pcm, this.#audio.sampleRate);
        this.#deps.metrics.upstreamLatency.observe(Number(process.hrtime.bigint() - receivedAt) / 1e9);
      },
      () => {
        if (this.#state !== "closed") this.#deps.metrics.drop("udp_opus_decode_failed");
      },
    );
  }

  /** A device message for this session (listen, abort, mcp, goodbye). */
  handleMessage(message: Exclude<DeviceMessage, { type: "hello" }>): void {
    if (this.#state === "closed") return;
    this.#idleTimer.refresh();
    switch (message.type) {
      case "listen":
        if (message.state === "start")
          this.#agent.onDeviceEvent({ kind: "listen_start", mode: message.mode ?? "auto" });
        else if (message.state === "stop") this.#agent.onDeviceEvent({ kind: "listen_stop" });
        else this.#agent.onDeviceEvent({ kind: "wake_word", text: message.text ?? "" });
        return;
      case "abort":
        this.#downstream.abort();
        this.#agent.onDeviceEvent({ kind: "abort", reason: message.reason });
        return;
      case "mcp":
        this.#agent.onDeviceEvent({ kind: "mcp", payload: message.payload });
        return;
      case "goodbye":
        this.#agent.onDeviceEvent({ kind: "device_goodbye" });
        void this.close("device_goodbye");
        return;
    }
  }

  /**
   * Inactivity: an agent that can say goodbye does so first (`end_prompt`, BUNNY's 6.2),
   * within FAREWELL_CAP_MS whatever the agent does; then the session closes.
   */
  async #inactive(): Promise<void> {
    if (this.#state === "closed" || this.#farewell) return;
    this.#farewell = true;
    if (this.#agent.farewell) {
      let cap: NodeJS.Timeout | undefined;
      const capped = new Promise<void>((resolve) => {
        cap = setTimeout(resolve, FAREWELL_CAP_MS);
      });
      await Promise.race([this.#agent.farewell(), capped]);
      clearTimeout(cap);
    }
    await this.close("inactivity_timeout");
  }

  /** Ends the session: goodbye to the device, then every resource released. Idempotent. */
  async close(reason: CloseReason): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#maxTimer);
    // The firmware acts on goodbye only when session_id matches its current session, so a
    // goodbye for a replaced session is harmless, and one for the current session spares
    // the device its 120 s liveness timeout.
    this.#publish(goodbyeMessage(this.sessionId, reason));
    this.#downstream.close();
    this.#deps.pool.close(this.#decoder);
    this.#deps.pool.close(this.#encoder);
    // The connection id and client entry are released now; the agent may take a while.
    this.#deps.onClosed(this, reason);
    try {
      await this.#agent.close();
    } catch (err) {
      this.#deps.warn("agent_close", "agent close failed", { err: (err as Error).message });
    }
  }

  #publish(message: JsonObject): void {
    this.#deps.publishToDevice(this.client.raw, message);
  }
}
