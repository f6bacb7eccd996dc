/**
 * A simulated xiaozhi device that behaves like current firmware (docs/device-protocol.md):
 * MQTT to the broker, publishes every message to `device-server` at QoS 0 and never
 * subscribes; hello v3, waits at most 10 s for the reply; UDP socket connected to the
 * announced server; 16-byte header from the server's nonce; AES-128-CTR with the header
 * as IV; sequence from 1 after each hello.
 *
 * And it checks everything it receives, as firmware would and stricter: exact datagram
 * length, decryption, strictly increasing sequence, audio only while `tts start` is in
 * force, every frame a valid Opus packet of 60 ms at the announced rate (the UDP side is
 * audio-channel.ts; the MQTT side is control-channel.ts).
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { AudioChannel, type ChannelError } from "./audio-channel.ts";
import { ControlChannel, type ControlChannelOptions } from "./control-channel.ts";
import { simulatedMac } from "./device-identity.ts";
import { firmwareHello } from "./firmware-hello.ts";
import { type DeviceMessage, type HelloReply, parseHelloReply } from "./hello-reply.ts";
import { type ListenMode, Microphone } from "./microphone.ts";
import { FRAME_MS, type UpstreamClip, upstreamClip } from "./opus-frames.ts";

export { type DeviceMessage, type HelloReply, parseHelloReply };

export type DeviceError = "hello_timeout" | "bad_hello_reply" | ChannelError;

/** How it reaches the broker (brokerUrl, signingKey, credentials, ca): control-channel.ts. */
export interface DeviceOptions
  extends Pick<ControlChannelOptions, "brokerUrl" | "signingKey" | "credentials" | "ca"> {
  /** Default: `GID_test@@@<mac_underscored>@@@<uuid>` from `mac`. */
  readonly clientId?: string;
  /** Lowercase colon MAC; default derived from `index`. */
  readonly mac?: string;
  readonly index?: number;
  /** Decode every downstream frame (default) or only every Nth, to spare the load generator. */
  readonly decodeEvery?: number;
  readonly clip?: UpstreamClip;
  /** Upstream frame duration announced in the hello and used for every frame: 20, 40 or 60 (default). */
  readonly frameDurationMs?: number;
  /**
   * Local address for the UDP socket (default: the kernel's choice, 127.0.0.1 on loopback).
   * Many simulated devices on distinct loopback addresses look like real devices, each
   * behind its own public address, to the gateway's per-address rate limit.
   */
  readonly udpBindAddress?: string;
}

export interface DeviceStats {
  helloLatencyMs: number[];
  framesSent: number;
  framesReceived: number;
  /** Downstream frames that arrived with a sequence gap before them. */
  sequenceGaps: number;
  errors: Partial<Record<DeviceError, number>>;
  /** Realtime-mode round trips: upstream frame k sent -> downstream frame k received. */
  roundTripMs: number[];
}

/** What a simulated device emits, and with what. */
export type DeviceEvents = {
  /** Every MQTT message from the server, parsed. */
  message: [DeviceMessage];
  /** A downstream frame's PCM, for the frames decoded (sequence a multiple of `decodeEvery`). */
  pcm: [Buffer];
  /** A downstream frame accepted and counted in `stats.framesReceived`. */
  audio: [];
  /** Something the firmware would reject; counted in `stats.errors` too. */
  device_error: [DeviceError];
  /** The server's goodbye for the current session, with its reason ("" if none). */
  server_goodbye: [string];
  /** The MQTT connection closed. */
  mqtt_closed: [];
};

export class SimulatedDevice extends EventEmitter<DeviceEvents> {
  readonly clientId: string;
  readonly mac: string;
  readonly stats: DeviceStats = {
    helloLatencyMs: [],
    framesSent: 0,
    framesReceived: 0,
    sequenceGaps: 0,
    errors: {},
    roundTripMs: [],
  };
  readonly #options: DeviceOptions;
  readonly #frameMs: number;
  readonly #microphone: Microphone;
  #mqtt: ControlChannel | undefined;
  #channel: AudioChannel | undefined;
  #session: HelloReply | undefined;
  #speaking = false;
  #mode: ListenMode = "auto";
  /** Send times of realtime-mode frames of the current turn, for round trips. */
  #turnSent: number[] = [];
  #turnReceived = 0;
  readonly messages: DeviceMessage[] = [];

  constructor(options: DeviceOptions) {
    super();
    // Tests and tools await several messages at once (hello reply, tts, goodbye).
    this.setMaxListeners(100);
    this.#options = options;
    const index = options.index ?? Math.floor(Math.random() * 0xffffff);
    this.mac = options.mac ?? simulatedMac(index);
    this.clientId = options.clientId ?? `GID_test@@@${this.mac.replaceAll(":", "_")}@@@${randomUUID()}`;
    this.#frameMs = options.frameDurationMs ?? FRAME_MS;
    this.#microphone = new Microphone(
      options.clip ?? upstreamClip(index % 8, 6, this.#frameMs),
      this.#frameMs,
      {
        channelOpen: () => this.#session !== undefined && this.#channel !== undefined,
        mode: () => this.#mode,
        speaking: () => this.#speaking,
        send: (frame) => this.sendFrame(frame),
      },
    );
  }

  get session(): HelloReply | undefined {
    return this.#session;
  }

  get speaking(): boolean {
    return this.#speaking;
  }

  /** Connects to the broker (no SUBSCRIBE: the broker subscribes us, as for real firmware). */
  async connect(): Promise<void> {
    const channel = new ControlChannel({
      brokerUrl: this.#options.brokerUrl,
      clientId: this.clientId,
      signingKey: this.#options.signingKey,
      credentials: this.#options.credentials,
      ca: this.#options.ca,
      onMessage: (message) => this.#onMessage(message),
      onClosed: () => this.emit("mqtt_closed"),
    });
    // Held before the CONNACK, so that close() ends a connection still being made.
    this.#mqtt = channel;
    await channel.connected();
  }

  /** Publishes any payload to `device-server`, as the firmware does. */
  publishRaw(payload: string | Buffer): void {
    this.#mqtt?.publish(payload);
  }

  send(message: DeviceMessage): void {
    this.publishRaw(JSON.stringify(message));
  }

  /** hello v3 as current firmware sends it; resolves with the validated reply. */
  async hello(timeoutMs = 10_000): Promise<HelloReply> {
    this.#microphone.stop();
    this.#session = undefined;
    this.#speaking = false;
    const started = performance.now();
    const reply = this.waitForMessage((m) => m.type === "hello", timeoutMs);
    this.send(firmwareHello(this.#frameMs));
    let msg: DeviceMessage;
    try {
      msg = await reply;
    } catch (err) {
      this.#count("hello_timeout");
      throw err;
    }
    const parsed = parseHelloReply(msg);
    if (!parsed) {
      this.#count("bad_hello_reply");
      throw new Error(`bad hello reply: ${JSON.stringify(msg)}`);
    }
    this.stats.helloLatencyMs.push(performance.now() - started);
    // Firmware resets both sequences whenever it accepts a server hello: a new channel.
    this.#session = parsed;
    await this.#closeUdp();
    this.#channel = await AudioChannel.open(parsed, {
      ...(this.#options.udpBindAddress ? { bindAddress: this.#options.udpBindAddress } : {}),
      decodeEvery: this.#options.decodeEvery ?? 1,
      inSession: () => this.#session !== undefined,
      speaking: () => this.#speaking,
      onSequenceGap: () => this.stats.sequenceGaps++,
      onFrame: (pcm) => this.#onFrame(pcm),
      onError: (error) => this.#count(error),
    });
    return parsed;
  }

  listen(mode: ListenMode): void {
    this.#mode = mode;
    this.send({ session_id: this.#session?.sessionId ?? "", type: "listen", state: "start", mode });
  }

  /**
   * Streams `ms` of speech at real-time pace, then (auto/manual) silence while listening,
   * as the microphone would (microphone.ts). Stops on `stopTalking()`, goodbye or close.
   */
  talk(ms: number): void {
    this.#turnSent = [];
    this.#turnReceived = 0;
    this.#microphone.talk(ms);
  }

  stopTalking(): void {
    this.#microphone.stop();
  }

  /** Sends one upstream audio frame now (tests use it to step through sequences). */
  sendFrame(opus: Buffer = this.#microphone.nextSpeech()): Buffer {
    if (!this.#session || !this.#channel) throw new Error("no audio channel: call hello() first");
    const datagram = this.#channel.send(opus);
    this.stats.framesSent++;
    if (this.#mode === "realtime") this.#turnSent.push(performance.now());
    return datagram;
  }

  /** One upstream frame lost on the way: the firmware numbered it, the network lost it. */
  loseFrame(): void {
    if (!this.#session || !this.#channel) throw new Error("no audio channel: call hello() first");
    this.#microphone.nextSpeech();
    this.#channel.lose();
    this.stats.framesSent++;
  }

  /**
   * A NAT rebinding: the audio channel moves to a new local socket (a new source port),
   * the session, key and sequences unchanged, as when a router drops its UDP mapping.
   */
  async rebind(): Promise<void> {
    if (!this.#session || !this.#channel) throw new Error("no audio channel: call hello() first");
    await this.#channel.rebind();
  }

  /** The UDP socket's own port (to forge packets from elsewhere in tests). */
  get udpLocalPort(): number | undefined {
    return this.#channel?.localPort;
  }

  /** Closes the audio channel as the user would: UDP first, then goodbye (firmware order). */
  async goodbye(): Promise<void> {
    this.#microphone.stop();
    await this.#closeUdp();
    if (this.#session) this.send({ session_id: this.#session.sessionId, type: "goodbye" });
    this.#session = undefined;
  }

  waitForMessage(predicate: (m: DeviceMessage) => boolean, timeoutMs = 10_000): Promise<DeviceMessage> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: DeviceMessage) => {
        if (!predicate(m)) return;
        clearTimeout(timer);
        this.off("message", onMessage);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.off("message", onMessage);
        // What did arrive, so a timeout in a test log says where the exchange stopped.
        const last = this.messages
          .slice(-8)
          .map((m) => (typeof m.state === "string" ? `${m.type} ${m.state}` : m.type))
          .join(", ");
        reject(
          new Error(
            `${this.clientId}: no matching message within ${timeoutMs} ms (last received: ${last || "none"}; audio frames received: ${this.stats.framesReceived})`,
          ),
        );
      }, timeoutMs);
      this.on("message", onMessage);
    });
  }

  /** Resolves after `count` downstream frames passed every check. */
  waitForAudio(count: number, timeoutMs = 10_000): Promise<void> {
    const target = this.stats.framesReceived + count;
    return new Promise((resolve, reject) => {
      const onAudio = () => {
        if (this.stats.framesReceived < target) return;
        clearTimeout(timer);
        this.off("audio", onAudio);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off("audio", onAudio);
        reject(
          new Error(`${this.clientId}: ${this.stats.framesReceived}/${target} frames within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.on("audio", onAudio);
    });
  }

  async close(): Promise<void> {
    this.#microphone.stop();
    await this.#closeUdp();
    const channel = this.#mqtt;
    this.#mqtt = undefined;
    await channel?.close();
  }

  /** Drops the MQTT connection without DISCONNECT (power loss, network gone). */
  async vanish(): Promise<void> {
    this.#microphone.stop();
    await this.#closeUdp();
    const channel = this.#mqtt;
    this.#mqtt = undefined;
    await channel?.vanish();
  }

  #onMessage(msg: DeviceMessage): void {
    this.messages.push(msg);
    if (msg.type === "tts" && msg.state === "start") this.#speaking = true;
    if (msg.type === "tts" && msg.state === "stop") {
      this.#speaking = false;
      // Auto mode: the firmware goes back to listening and says so.
      if (this.#mode === "auto" && this.#session) this.listen("auto");
    }
    if (msg.type === "goodbye" && this.#session && msg.session_id === this.#session.sessionId) {
      // Firmware closes its channel without a goodbye of its own.
      this.#microphone.stop();
      void this.#closeUdp();
      this.#session = undefined;
      this.#speaking = false;
      this.emit("server_goodbye", typeof msg.reason === "string" ? msg.reason : "");
    }
    this.emit("message", msg);
  }

  /** A downstream frame the channel accepted. */
  #onFrame(pcm: Buffer | undefined): void {
    if (pcm) this.emit("pcm", pcm);
    this.stats.framesReceived++;
    if (this.#mode === "realtime") {
      const sentAt = this.#turnSent[this.#turnReceived++];
      if (sentAt !== undefined) this.stats.roundTripMs.push(performance.now() - sentAt);
    }
    this.emit("audio");
  }

  #count(error: DeviceError): void {
    this.stats.errors[error] = (this.stats.errors[error] ?? 0) + 1;
    this.emit("device_error", error);
  }

  async #closeUdp(): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    await channel?.close();
  }
}
