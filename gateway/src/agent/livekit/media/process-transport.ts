/**
 * The `process` room transport: the session's participant lives in the media process
 * (media-process.ts). Upstream, the device's Opus goes out unchanged with RTP timestamps
 * that follow the device's timing (upstream-clock.ts). Downstream, the agent's RTP is put
 * back in order (jitter-buffer.ts), decoded in the Opus worker pool straight to 24 kHz mono
 * and handed up as PCM; a lost packet is concealed by libopus (decoding an empty packet is
 * its packet-loss concealment). DTX or no packets: nothing is handed up, and the turn
 * logic above ends the turn on its own deadline.
 */

import { randomInt } from "node:crypto";
import type { OpusPool, OpusStream } from "../../../audio/opus-pool.ts";
import { DOWN_RATE } from "../../../protocol/audio-format.ts";
import type { UpstreamOpus } from "../../agent-bridge.ts";
import type {
  RoomJoin,
  RoomTransport,
  RoomTransportFactory,
  RoomTransportHandlers,
} from "../room-transport.ts";
import type { FromMedia } from "./ipc-codec.ts";
import { JitterBuffer, type Released } from "./jitter-buffer.ts";
import type { MediaProcess } from "./media-process.ts";
import { isServerBlankFrame } from "./server-blank-frame.ts";
import { UpstreamClock } from "./upstream-clock.ts";

export interface ProcessTransportDeps {
  readonly media: MediaProcess;
  readonly pool: OpusPool;
  drop(reason: string): void;
  /** Agent RTP arrival to PCM handed up, seconds (reorder wait plus decode). */
  decoded?(seconds: number): void;
  /** Injected for tests; performance.now by default. */
  readonly now?: () => number;
  readonly joinTimeoutMs?: number;
  readonly leaveTimeoutMs?: number;
}

/** A missing agent packet is waited for this long once a later one is here. */
const REORDER_WAIT_MS = 30;
const REORDER_MAX_PACKETS = 16;
/** Concealment covers at most this many lost packets in a row; longer is silence. */
const MAX_CONCEALED = 5;
/** Agents send 20 ms packets; used until the first packet has been decoded. */
const DEFAULT_PACKET_SAMPLES = DOWN_RATE / 50;
const EMPTY = Buffer.alloc(0);

export function processTransportFactory(deps: ProcessTransportDeps): RoomTransportFactory {
  return (join, handlers) => new ProcessTransport(join, handlers, deps);
}

type JoinWait = { resolve: () => void; reject: (err: Error) => void };

export class ProcessTransport implements RoomTransport {
  readonly #join: RoomJoin;
  readonly #handlers: RoomTransportHandlers;
  readonly #deps: ProcessTransportDeps;
  readonly #now: () => number;
  readonly #clock = new UpstreamClock(randomInt(1, 2 ** 31));
  readonly #jitter = new JitterBuffer({ maxPackets: REORDER_MAX_PACKETS, waitMs: REORDER_WAIT_MS });
  readonly #participants = new Set<string>();
  #session: number | undefined;
  #joinWait: JoinWait | undefined;
  #leftWait: (() => void) | undefined;
  #decoder: OpusStream | undefined;
  #packetSamples = DEFAULT_PACKET_SAMPLES;
  #gapTimer: NodeJS.Timeout | undefined;
  #joined = false;
  #gone = false;

  constructor(join: RoomJoin, handlers: RoomTransportHandlers, deps: ProcessTransportDeps) {
    this.#join = join;
    this.#handlers = handlers;
    this.#deps = deps;
    this.#now = deps.now ?? (() => performance.now());
  }

  async join(): Promise<void> {
    if (this.#gone) throw new Error("transport left");
    await this.#deps.media.start();
    const session = this.#deps.media.open((m) => this.#onFrame(m));
    if (session === undefined) throw new Error("media process not running");
    this.#session = session;
    const timeoutMs = this.#deps.joinTimeoutMs ?? 12_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`join timed out after ${timeoutMs} ms`)), timeoutMs);
      this.#joinWait = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#deps.media.send({ kind: "join", session, url: this.#join.url, token: this.#join.token });
    }).catch(async (err: Error) => {
      this.#joinWait = undefined;
      await this.leave();
      throw err;
    });
    this.#joinWait = undefined;
  }

  pushPcm(): void {
    this.#deps.drop("media_pcm_unsupported");
  }

  pushOpus(frame: UpstreamOpus): void {
    if (!this.#joined || this.#session === undefined) return this.#deps.drop("agent_not_connected");
    const timestamp = this.#clock.next(this.#now(), frame.durationMs);
    this.#deps.media.send({
      kind: "opus",
      session: this.#session,
      timestamp,
      durationMs: frame.durationMs,
      opus: frame.opus,
    });
  }

  async sendData(payload: Uint8Array, topic?: string): Promise<void> {
    if (!this.#joined || this.#session === undefined) throw new Error("not joined");
    if (!this.#deps.media.send({ kind: "data", session: this.#session, topic: topic ?? "", payload }))
      throw new Error("media process refused the data packet");
  }

  async leave(): Promise<void> {
    if (this.#gone) return;
    this.#gone = true;
    this.#joined = false;
    clearTimeout(this.#gapTimer);
    this.#jitter.reset();
    if (this.#decoder) this.#deps.pool.close(this.#decoder);
    this.#decoder = undefined;
    const session = this.#session;
    if (session === undefined) return;
    // Wait for the media process to confirm the participant is gone (bounded: if it is
    // down, its participants went with it).
    if (this.#deps.media.running) {
      const timeoutMs = this.#deps.leaveTimeoutMs ?? 5000;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#leftWait = () => {
          clearTimeout(timer);
          resolve();
        };
        if (!this.#deps.media.send({ kind: "leave", session })) this.#leftWait();
      });
    }
    this.#leftWait = undefined;
    this.#deps.media.release(session);
  }

  #onFrame(m: FromMedia): void {
    switch (m.kind) {
      case "joined":
        if (this.#gone) return;
        this.#joined = true;
        return this.#joinWait?.resolve();
      case "join_failed":
        return this.#joinWait?.reject(new Error(`join failed: ${m.reason}`));
      case "disconnected":
        if (this.#joinWait) return this.#joinWait.reject(new Error(`disconnected: ${m.reason}`));
        if (this.#gone) return this.#leftWait?.();
        this.#joined = false;
        return this.#handlers.disconnected(m.reason);
      case "left":
        return this.#leftWait?.();
      case "participant_joined":
        if (this.#gone || this.#participants.has(m.identity)) return;
        this.#participants.add(m.identity);
        return this.#handlers.participantJoined({
          identity: m.identity,
          kind: m.participantKind,
          attributes: m.attributes,
        });
      case "participant_left":
        if (!this.#participants.delete(m.identity) || this.#gone) return;
        return this.#handlers.participantLeft(m.identity);
      case "attributes":
        if (this.#gone) return;
        return this.#handlers.attributesChanged(m.identity, m.attributes);
      case "data":
        if (this.#gone) return;
        return this.#handlers.data(m.payload, m.topic || undefined, m.from || undefined);
      case "text":
        if (this.#gone) return;
        return this.#handlers.text({
          streamId: m.streamId,
          topic: m.topic,
          from: m.from,
          attributes: m.attributes,
          text: m.text,
          done: m.done,
        });
      case "agent_rtp":
        if (this.#gone) return;
        return this.#onRtp(m.sequence, m.timestamp, m.payload);
      default:
        return;
    }
  }

  #onRtp(sequence: number, timestamp: number, payload: Buffer): void {
    const now = this.#now();
    const drop = this.#jitter.push({ sequence, timestamp, payload, arrivedMs: now }, now);
    if (drop) this.#deps.drop(`agent_rtp_${drop}`);
    this.#release(now);
  }

  #release(now: number): void {
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    for (const r of this.#jitter.pop(now)) this.#decode(r);
    const deadline = this.#jitter.deadline;
    if (deadline !== undefined) {
      this.#gapTimer = setTimeout(() => this.#release(this.#now()), Math.max(0, deadline - now));
    }
  }

  #decode(r: Released): void {
    // Kept in the reorder buffer (they hold sequence numbers), never decoded.
    if (r.kind === "packet" && isServerBlankFrame(r.packet.payload))
      return this.#deps.drop("agent_rtp_server_blank");
    this.#decoder ??= this.#deps.pool.openDecoder(DOWN_RATE);
    const decoder = this.#decoder;
    if (r.kind === "packet") {
      this.#deps.pool.decode(decoder, r.packet.payload).then(
        (pcm) => {
          if (this.#gone) return;
          this.#packetSamples = pcm.length >> 1;
          this.#handlers.agentAudio(pcm);
          const at = r.packet.arrivedMs;
          if (at !== undefined) this.#deps.decoded?.((this.#now() - at) / 1000);
        },
        () => !this.#gone && this.#deps.drop("agent_rtp_undecodable"),
      );
      return;
    }
    this.#deps.drop("agent_rtp_lost");
    if (r.overflow) this.#deps.drop("agent_rtp_overflow");
    const concealed = Math.min(r.count, MAX_CONCEALED);
    for (let i = 0; i < concealed; i++) {
      // libopus conceals on an empty packet; @discordjs/opus always asks for its maximum
      // (5760 samples: 240 ms at 24 kHz), so only one lost packet's worth is kept.
      this.#deps.pool.decode(decoder, EMPTY).then(
        (pcm) => {
          if (this.#gone) return;
          this.#handlers.agentAudio(pcm.subarray(0, Math.min(pcm.length, this.#packetSamples * 2)));
        },
        () => !this.#gone && this.#deps.drop("agent_rtp_conceal_failed"),
      );
    }
  }
}
