/**
 * A simulated device's UDP audio channel for one session (docs/device-protocol.md): a
 * socket connected to the server the hello reply announced, each upstream frame sealed
 * with the session's key and nonce and a sequence counted from 1, and each downstream
 * datagram checked as firmware would, and stricter: exact length, this session's
 * connection, a strictly increasing sequence, audio only while `tts start` is in force,
 * and every frame a valid Opus packet of the announced duration at the announced rate.
 */
import { createSocket, type Socket } from "node:dgram";
import { createRequire } from "node:module";
import type { OpusEncoder as OpusCodec } from "@discordjs/opus";
import { openAudioPacket, sealAudioPacket } from "../../gateway/src/protocol/audio-packet.ts";
import { parseUdpPacket } from "../../gateway/src/protocol/udp-packet.ts";
import type { HelloReply } from "./hello-reply.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

/** What the channel rejects of a downstream datagram. */
export type ChannelError =
  | "udp_bad_length"
  | "udp_wrong_connection"
  | "udp_old_sequence"
  | "audio_before_tts_start"
  | "opus_decode_failed"
  | "wrong_frame_size";

export interface AudioChannelOptions {
  /** Local address to bind before connecting (default: the kernel's choice). */
  readonly bindAddress?: string;
  /** Decode every downstream frame (1) or only those whose sequence is a multiple of this. */
  readonly decodeEvery: number;
  /**
   * Whether the device holds a session: while it waits for a new hello's reply, or after a
   * goodbye, it ignores datagrams on the old socket, as firmware does.
   */
  readonly inSession: () => boolean;
  /** Whether the device is playing (`tts start` in force): audio outside it is an error. */
  readonly speaking: () => boolean;
  /** A downstream datagram of this session arrived with a sequence gap before it. */
  readonly onSequenceGap: () => void;
  /** A downstream frame passed every check; its PCM when it was decoded. */
  readonly onFrame: (pcm: Buffer | undefined) => void;
  readonly onError: (error: ChannelError) => void;
}

export class AudioChannel {
  readonly #session: HelloReply;
  readonly #options: AudioChannelOptions;
  readonly #connectionId: number;
  readonly #decoder: OpusCodec;
  #socket: Socket | undefined;
  #upSeq = 0;
  #downSeq = 0;

  private constructor(session: HelloReply, options: AudioChannelOptions) {
    this.#session = session;
    this.#options = options;
    this.#connectionId = session.nonce.readUInt32BE(4);
    this.#decoder = new OpusEncoder(session.sampleRate, 1);
  }

  /** Opens the channel of the session `reply` announced: both sequences start again. */
  static async open(reply: HelloReply, options: AudioChannelOptions): Promise<AudioChannel> {
    const channel = new AudioChannel(reply, options);
    await channel.rebind();
    return channel;
  }

  /** The socket's own port (to forge packets from elsewhere in tests). */
  get localPort(): number | undefined {
    return this.#socket?.address().port;
  }

  /** Seals and sends one upstream frame with the next sequence; returns the datagram. */
  send(opus: Buffer): Buffer {
    if (!this.#socket) throw new Error("audio channel closed");
    this.#upSeq++;
    const datagram = sealAudioPacket(
      this.#session.key,
      { connectionId: this.#connectionId, timestamp: 0, sequence: this.#upSeq },
      opus,
    );
    this.#socket.send(datagram);
    return datagram;
  }

  /** A frame lost on the way: its sequence is used, and nothing reaches the gateway. */
  lose(): void {
    if (!this.#socket) throw new Error("audio channel closed");
    this.#upSeq++;
  }

  /**
   * Moves to a new local socket (a new source port), the session, key and sequences
   * unchanged, as after a NAT rebinding.
   */
  async rebind(): Promise<void> {
    await this.close();
    const socket = createSocket("udp4");
    socket.on("message", (d) => this.#onDatagram(d));
    socket.on("error", () => {});
    const bindAddress = this.#options.bindAddress;
    if (bindAddress) {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind(0, bindAddress, () => {
          socket.off("error", reject);
          resolve();
        });
      });
    }
    const reply = this.#session;
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(reply.port, reply.server, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    this.#socket = socket;
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  #onDatagram(datagram: Buffer): void {
    if (!this.#socket || !this.#options.inSession()) return;
    const s = this.#session;
    const parsed = parseUdpPacket(datagram);
    if (!parsed.ok) return this.#options.onError("udp_bad_length");
    const { header } = parsed.packet;
    if (header.connectionId !== this.#connectionId) return this.#options.onError("udp_wrong_connection");
    if (header.sequence <= this.#downSeq) return this.#options.onError("udp_old_sequence");
    if (header.sequence !== this.#downSeq + 1) this.#options.onSequenceGap();
    this.#downSeq = header.sequence;
    if (!this.#options.speaking()) return this.#options.onError("audio_before_tts_start");
    const opus = openAudioPacket(s.key, parsed.packet);
    let pcm: Buffer | undefined;
    if (header.sequence % this.#options.decodeEvery === 0) {
      try {
        pcm = this.#decoder.decode(opus);
      } catch {
        return this.#options.onError("opus_decode_failed");
      }
      const expected = (s.sampleRate * s.frameDurationMs) / 1000;
      if (pcm.length !== expected * 2) return this.#options.onError("wrong_frame_size");
    }
    this.#options.onFrame(pcm);
  }
}
