/**
 * Agent voice to device: PCM -> 60 ms frames -> bounded queue -> Opus (the session's
 * pinned encoder) -> AES-CTR -> UDP to the device's last proven address.
 *
 * Bounds (the older gateway's leaks, made impossible): at most MAX_QUEUED_FRAMES frames
 * (10 x 2880 bytes = 28,800 bytes of PCM) wait for the encoder; beyond that the oldest is
 * dropped and counted. Frames go out in order with sequence 1, 2, 3... after each hello.
 * `tts start` precedes the first frame of a turn and `tts stop` follows its last.
 */

import { PcmFramer } from "../audio/framer.ts";
import type { OpusPool, OpusStream } from "../audio/opus-pool.ts";
import type { GatewayMetrics } from "../ops/metrics.ts";
import { DOWN_FRAME_BYTES } from "../protocol/audio-format.ts";
import { sealAudioPacket } from "../protocol/audio-packet.ts";
import { type SessionTimer, type StartTimer, startNodeTimer } from "./timer.ts";

export const MAX_QUEUED_FRAMES = 10;
/** Frames handed to the encoder and not yet sent. Keeps order cheap and latency low. */
const MAX_ENCODING = 3;
/**
 * Firmware plays downstream audio only after `tts start` has put it in Speaking state,
 * and that message travels gateway -> broker -> device over TCP while audio goes
 * straight over UDP: sent together, the first frames can overtake it and be dropped.
 * The first frame of each turn therefore waits this long after `tts start` (40 ms was not
 * enough when many sessions start at once: the broker path then takes longer). Later
 * frames of the turn do not wait.
 */
export const TTS_START_LEAD_MS = 80;

export interface RemoteAddress {
  readonly address: string;
  readonly port: number;
}

export interface DownstreamDeps {
  readonly pool: Pick<OpusPool, "encode">;
  readonly encoder: OpusStream;
  readonly key: Buffer;
  readonly connectionId: number;
  readonly metrics: GatewayMetrics;
  /** The device's address, once an upstream packet has proven it. */
  remote(): RemoteAddress | undefined;
  sendUdp(datagram: Buffer, to: RemoteAddress): void;
  sendTts(state: "start" | "stop", text?: string): void;
  /**
   * Monotonic ms; performance.now by default (injected so the tts-start lead is testable).
   * Not the wall clock: a step of it would hold the turn's first frame (a step back) or
   * skip the lead, and jump the packets' timestamps.
   */
  readonly now?: () => number;
  /** The lead timer; Node's by default. */
  readonly startTimer?: StartTimer;
}

interface QueuedFrame {
  readonly pcm: Buffer;
  readonly queuedAt: bigint;
}

export class Downstream {
  readonly #deps: DownstreamDeps;
  readonly #framer = new PcmFramer(DOWN_FRAME_BYTES);
  #queue: QueuedFrame[] = [];
  #encoding = 0;
  #sequence = 0;
  /** The last packet's timestamp: each packet's is greater (#send says why). */
  #lastTimestamp = 0;
  #speaking = false;
  #speakingSince = 0;
  #leadTimer: SessionTimer | undefined;
  readonly #now: () => number;
  readonly #startTimer: StartTimer;
  #ending = false;
  #closed = false;
  /** On `#now`: packet timestamps count from here. */
  readonly #startedAt: number;
  /** Bumped by abort/close: encodes started before it are discarded. */
  #epoch = 0;

  constructor(deps: DownstreamDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? performance.now.bind(performance);
    this.#startTimer = deps.startTimer ?? startNodeTimer;
    this.#startedAt = this.#now();
  }

  /** A turn is open: from its `tts start` until its `tts stop` (or an abort). */
  get speaking(): boolean {
    return this.#speaking;
  }

  speechStart(text?: string): void {
    if (this.#closed) return;
    this.#ending = false;
    if (this.#speaking) return;
    this.#speaking = true;
    this.#speakingSince = this.#now();
    this.#deps.sendTts("start", text);
  }

  audio(pcm: Buffer): void {
    if (this.#closed) return;
    // Only within a turn: after an abort, agent audio still in flight must not restart
    // playback; the agent's next turn starts with speechStart.
    if (!this.#speaking) return this.#deps.metrics.drop("down_outside_turn");
    for (const frame of this.#framer.push(pcm)) this.#enqueue(frame);
    this.#pump();
  }

  speechEnd(): void {
    if (this.#closed || !this.#speaking) return;
    const tail = this.#framer.flush();
    if (tail) this.#enqueue(tail);
    this.#ending = true;
    this.#pump();
  }

  /** Device abort: drop what is queued and stop at once; nothing plays until speechStart. */
  abort(): void {
    this.#epoch++;
    this.#queue = [];
    this.#framer.clear();
    this.#ending = false;
    if (this.#speaking) {
      this.#speaking = false;
      this.#deps.sendTts("stop");
    }
  }

  /**
   * Nothing is sent after this: not the frames still encoding, and no `tts stop` when they
   * settle. That stop would carry this session's id, and after a `replaced` close it reaches
   * the device in its new session, which it could take out of Speaking.
   */
  close(): void {
    this.#closed = true;
    this.#leadTimer?.cancel();
    this.#epoch++;
    this.#queue = [];
    this.#framer.clear();
    this.#speaking = false;
    this.#ending = false;
  }

  #enqueue(pcm: Buffer): void {
    if (this.#queue.length >= MAX_QUEUED_FRAMES) {
      this.#queue.shift();
      this.#deps.metrics.drop("down_queue_full");
    }
    this.#queue.push({ pcm, queuedAt: process.hrtime.bigint() });
  }

  #pump(): void {
    if (this.#closed) return;
    const lead = this.#speakingSince + TTS_START_LEAD_MS - this.#now();
    if (lead > 0 && this.#queue.length > 0) {
      this.#leadTimer ??= this.#startTimer(lead, () => {
        this.#leadTimer = undefined;
        this.#pump();
      });
      return;
    }
    while (this.#encoding < MAX_ENCODING && this.#queue.length > 0) {
      const frame = this.#queue.shift() as QueuedFrame;
      const epoch = this.#epoch;
      this.#encoding++;
      // Encodes of one stream resolve in the order they were queued (one pinned worker,
      // batches processed in order), so sequence numbers follow the audio.
      this.#deps.pool.encode(this.#deps.encoder, frame.pcm).then(
        (opus) => {
          this.#encoding--;
          if (epoch === this.#epoch) this.#send(opus, frame.queuedAt);
          this.#pump();
        },
        () => {
          this.#encoding--;
          if (epoch === this.#epoch && !this.#closed) this.#deps.metrics.drop("down_encode_failed");
          this.#pump();
        },
      );
    }
    if (this.#ending && this.#queue.length === 0 && this.#encoding === 0 && this.#speaking) {
      this.#ending = false;
      this.#speaking = false;
      this.#deps.sendTts("stop");
    }
  }

  #send(opus: Buffer, queuedAt: bigint): void {
    const remote = this.#deps.remote();
    if (!remote) {
      // No upstream packet yet: we do not know where the device is (NAT).
      this.#deps.metrics.drop("down_no_remote_address");
      return;
    }
    this.#sequence = (this.#sequence + 1) >>> 0;
    // Milliseconds since the session's downstream began: firmware uses downstream timestamps
    // only to match played audio for echo cancellation, not as a wall time (device-protocol.md
    // 3.4). Each packet's is greater than the last's and never 0, though frames go out in
    // bursts within a millisecond: the header is the packet's AES-CTR counter block, whose
    // low 32 bits (the sequence) count its blocks on, so two packets of one length with the
    // same timestamp and consecutive sequences were encrypted with shared keystream, and so
    // was one at timestamp 0 with the device's own packets (which carry 0) of its sequence.
    const timestamp = Math.max(this.#lastTimestamp + 1, Math.round(this.#now() - this.#startedAt)) >>> 0;
    this.#lastTimestamp = timestamp;
    const datagram = sealAudioPacket(
      this.#deps.key,
      {
        connectionId: this.#deps.connectionId,
        timestamp,
        sequence: this.#sequence,
      },
      opus,
    );
    this.#deps.sendUdp(datagram, remote);
    this.#deps.metrics.frameDown();
    this.#deps.metrics.downstreamLatency.observe(Number(process.hrtime.bigint() - queuedAt) / 1e9);
  }
}
