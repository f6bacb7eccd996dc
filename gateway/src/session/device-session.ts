/**
 * One device's audio channel, from its hello to its close: the UDP crypto and sequence
 * state, the pinned Opus streams, the agent, and every timer. `close()` releases all of it
 * and says `goodbye` with the session id, whatever the reason.
 */

import type { RemoteInfo } from "node:dgram";
import type { AgentBridge, AgentFactory } from "../agent/agent-bridge.ts";
import type { OpusPool, OpusStream } from "../audio/opus-pool.ts";
import type { CloseReason, GatewayMetrics } from "../ops/metrics.ts";
import { DOWN_RATE } from "../protocol/audio-format.ts";
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
import { checkOpusPacket, MAX_OPUS_PACKET_BYTES } from "../protocol/opus-packet.ts";
import { headerTemplate, type UdpPacket } from "../protocol/udp-packet.ts";
import { Downstream, type RemoteAddress } from "./downstream.ts";
import { type SessionTimer, type StartTimer, startNodeTimer } from "./timer.ts";
import { UpstreamGuard } from "./upstream-guard.ts";

/**
 * The most device frames concealed before a packet that follows a gap in the sequence,
 * where the gateway decodes (180 ms of 60 ms frames). A longer gap is a hole in the
 * stream, not a lost frame or two: it is left a gap rather than filled with made-up sound.
 */
export const MAX_CONCEALED_UP_FRAMES = 3;

/** An empty packet: libopus conceals a lost frame on it. */
const LOST = Buffer.alloc(0);

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
  /** The idle and max-duration timers; Node's when absent. */
  readonly startTimer?: StartTimer;
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
  readonly #deps: SessionDeps;
  readonly #key = newSessionKey();
  readonly #audio: DeviceAudioParams;
  readonly #decoder: OpusStream;
  readonly #encoder: OpusStream;
  readonly #agent: AgentBridge;
  readonly #downstream: Downstream;
  readonly #idleTimer: SessionTimer;
  readonly #maxTimer: SessionTimer;
  readonly #upstream = new UpstreamGuard();
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
      metrics: deps.metrics,
      remote: () => this.#upstream.remote,
      sendUdp: (d, to) => deps.sendUdp(d, to),
      sendTts: (state, text) => {
        // The device has just heard its last from us: idle counts from the turn's end.
        if (state === "stop") this.#idleTimer.refresh();
        this.#publish(ttsMessage(sessionId, state, text));
      },
      startTimer: deps.startTimer,
    });
    try {
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
    } catch (err) {
      // No session comes of it (the caller counts the failure): its codec streams go back.
      this.#downstream.close();
      deps.pool.close(this.#decoder);
      deps.pool.close(this.#encoder);
      throw err;
    }
    const startTimer = deps.startTimer ?? startNodeTimer;
    this.#idleTimer = startTimer(deps.idleTimeoutMs, () => void this.#inactive());
    this.#maxTimer = startTimer(deps.maxSessionMs, () => void this.close("max_duration"));
  }

  get state(): SessionState {
    return this.#state;
  }

  get remote(): RemoteAddress | undefined {
    return this.#upstream.remote;
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
   * An upstream datagram whose connection id is ours. Nothing a packet says is trusted:
   * its size is checked before any AES, and only UpstreamGuard decides whether it is the
   * device's (sequence window, pinned address, NAT rebinding). The same rule holds for a
   * bridge that takes Opus undecoded (pushOpus) and for the decoding path.
   */
  handleDatagram(packet: UdpPacket, from: RemoteInfo, receivedAt: bigint): void {
    if (this.#state === "closed") return;
    // A 64 KB datagram with a live connection id is refused here, before it is decrypted.
    if (packet.payload.length === 0 || packet.payload.length > MAX_OPUS_PACKET_BYTES) {
      this.#deps.metrics.drop("udp_bad_opus");
      return;
    }
    let opus: Buffer | undefined;
    const first = this.#upstream.lastSequence === 0;
    const verdict = this.#upstream.admit(packet.header.sequence, from, () => {
      opus = openAudioPacket(this.#key, packet);
      return checkOpusPacket(opus, this.#audio.frameDurationMs) === undefined;
    });
    if (verdict.kind === "drop") {
      this.#deps.metrics.drop(verdict.reason);
      return;
    }
    const frame = opus as Buffer;
    if (verdict.missed > 0) this.#deps.metrics.framesMissedUp(verdict.missed);
    if (this.#agent.pushOpus) {
      // Passed through undecoded: the Opus sanity check above is all the proof we get.
      this.#state = "streaming";
      this.#idleTimer.refresh();
      this.#deps.metrics.frameUp();
      this.#agent.pushOpus({
        opus: frame,
        durationMs: this.#audio.frameDurationMs,
        sampleRate: this.#audio.sampleRate,
        sequence: packet.header.sequence,
      });
      this.#deps.metrics.upstreamLatency.observe(Number(process.hrtime.bigint() - receivedAt) / 1e9);
      return;
    }
    // Frames lost just before this one are concealed first, so the agent hears them as
    // lost frames instead of the audio closing up around them. Not before the session's
    // first packet: nothing of the stream was decoded to go on from.
    const concealed = first ? 0 : Math.min(verdict.missed, MAX_CONCEALED_UP_FRAMES);
    const decoded =
      concealed === 0
        ? this.#deps.pool.decode(this.#decoder, frame)
        : this.#deps.pool
            .decodeSequence(this.#decoder, [...new Array<Buffer>(concealed).fill(LOST), frame])
            .then(({ pcm, undecodable }) => {
              if (undecodable > 0) throw new Error("undecodable Opus");
              return pcm;
            });
    decoded.then(
      (pcm) => {
        if (this.#state === "closed") return;
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
    // Not idle while the agent speaks: the device, playing, sends nothing (firmware in auto
    // mode turns its microphone off while Speaking), and a reply longer than the timeout
    // (a story) would be cut off by a goodbye. Idle counts again from the turn's end.
    if (this.#downstream.speaking) {
      this.#idleTimer.refresh();
      return;
    }
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
    this.#idleTimer.cancel();
    this.#maxTimer.cancel();
    // The firmware acts on goodbye only when session_id matches its current session; one
    // for the current session spares the device its 120 s liveness timeout. None back to
    // a device that said goodbye itself (an independent client acts on it, and firmware
    // that re-hellos at once could take it for its new channel), nor for a session its own
    // newer hello replaced (the device may be between the two replies), nor for one whose
    // MQTT connection a new one took over: the firmware closed that channel with the old
    // connection, and the goodbye would reach the new one, which may be opening a session.
    if (reason !== "device_goodbye" && reason !== "replaced" && reason !== "mqtt_takenover")
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
