/**
 * A pool of Opus worker threads. Each stream (one session's decoder or encoder) is pinned
 * at open to the worker with the fewest streams, and stays there: Opus keeps state between
 * frames. Frames queued in one event-loop turn travel to a worker in one message.
 *
 * A worker that dies is replaced (opus-worker-slot.ts); its streams are re-opened on the
 * new worker with fresh codec state (one audible glitch beats a dead session), and its
 * in-flight frames fail. Each loss is logged with its slot's index, and counted by reason
 * (opus-worker-loss.ts).
 *
 * The first `inlineStreams` streams of each role are not sent to a worker: their frames are
 * coded on the calling thread, in the same end-of-turn flush. A frame handed to a sleeping
 * worker and back costs more CPU than coding it (the two thread wakeups; docs/performance.md,
 * "The first sessions' codecs on the main thread"), and a worker sleeps between frames
 * until it has many streams. The cap bounds what the main thread takes on. Isolation is not
 * lost: a worker shares the process, so a native crash in libopus ends it either way.
 */

import { LogLimiter } from "../ops/log.ts";
import { InlineCodecs } from "./opus-inline.ts";
import {
  type CodecRole,
  FrameOp,
  OPUS_SAMPLE_RATES,
  type OpenStream,
  packSequence,
  SEQUENCE_HEADER_BYTES,
} from "./opus-protocol.ts";
import {
  newLossCounts,
  type WarnLogger,
  WORKER_LOSS_REASONS,
  WorkerLossLog,
  type WorkerLossReason,
} from "./opus-worker-loss.ts";
import { WorkerSlot, type WorkerSlotOptions, type WorkerStats } from "./opus-worker-slot.ts";

export type { WorkerStats } from "./opus-worker-slot.ts";

export interface OpusPoolOptions {
  /** Worker threads. Default 4 (WORKER_COUNT). */
  readonly size: number;
  /** Encoder complexity 0..10 (see docs/performance.md for why the default is what it is). */
  readonly complexity: number;
  /** Encoder bitrate, bits per second. */
  readonly bitrate: number;
  /**
   * Streams of each role (decoders, encoders) coded on the calling thread before further
   * ones go to the workers (OPUS_INLINE_STREAMS). Default 0: every stream in a worker.
   */
  readonly inlineStreams?: number;
  /** How each worker slot makes its workers and schedules a delayed replacement; injected for tests. */
  readonly slot?: Omit<WorkerSlotOptions, "lossLog">;
  /** Where a lost worker is logged ("opus worker lost", rate-limited per slot); nowhere by default. */
  readonly log?: WarnLogger;
}

export interface OpusStream {
  readonly id: number;
  readonly role: CodecRole;
  readonly sampleRate: number;
  /** Index of the worker this stream is pinned to; -1: coded on the calling thread. */
  readonly worker: number;
}

export interface DecodedSequence {
  /** PCM16 LE of every packet, in order (concealment for empty and undecodable ones). */
  readonly pcm: Buffer;
  /** Packets that failed to decode and were concealed instead. */
  readonly undecodable: number;
}

export class OpusPool {
  readonly #options: OpusPoolOptions;
  readonly #slots: WorkerSlot[] = [];
  readonly #streamSlot = new Map<number, number>();
  readonly #inline: InlineCodecs;
  #nextStreamId = 1;
  #flushScheduled = false;
  #closed = false;
  #lastSample = process.hrtime.bigint();
  #inlineUtilization = 0;

  private constructor(options: OpusPoolOptions) {
    this.#options = options;
    this.#inline = new InlineCodecs(options.inlineStreams ?? 0);
  }

  /** Starts the workers and resolves once each has loaded libopus. */
  static async start(options: OpusPoolOptions): Promise<OpusPool> {
    if (!Number.isInteger(options.size) || options.size < 1) throw new Error("opus pool size must be >= 1");
    const pool = new OpusPool(options);
    // One limiter for the pool, a budget per slot in it: a slot that keeps losing its worker
    // does not hide another's first loss.
    const limiter = new LogLimiter();
    for (let i = 0; i < options.size; i++) {
      const lossLog = options.log ? new WorkerLossLog(options.log, i, limiter) : undefined;
      pool.#slots.push(new WorkerSlot({ ...options.slot, lossLog }));
    }
    try {
      await Promise.all(pool.#slots.map((s) => s.ready));
    } catch (err) {
      // No worker is left running or waiting to be replaced behind the failed start.
      await pool.shutdown();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.#slots.length;
  }

  openDecoder(sampleRate: number): OpusStream {
    return this.#open("decoder", sampleRate);
  }

  openEncoder(sampleRate: number): OpusStream {
    return this.#open("encoder", sampleRate);
  }

  /** Releases the stream's codec state in its worker. Frames still queued for it fail. */
  close(stream: OpusStream): void {
    if (this.#inline.close(stream.id)) return;
    const index = this.#streamSlot.get(stream.id);
    if (index === undefined) return;
    this.#streamSlot.delete(stream.id);
    (this.#slots[index] as WorkerSlot).close(stream.id);
  }

  /** Opus packet in, PCM16 LE out. */
  decode(stream: OpusStream, opus: Buffer): Promise<Buffer> {
    return this.#enqueue(stream, opus);
  }

  /**
   * Several Opus packets of one decoder in order, one job: their PCM16 LE one after the
   * other. An empty packet stands for a lost one and is concealed; so is a packet that
   * fails to decode (counted in `undecodable`), so the sequence keeps its length.
   */
  async decodeSequence(stream: OpusStream, packets: readonly Buffer[]): Promise<DecodedSequence> {
    const out = await this.#enqueue(stream, packSequence(packets), FrameOp.sequence);
    return { pcm: out.subarray(SEQUENCE_HEADER_BYTES), undecodable: out.readUInt16LE(0) };
  }

  /** PCM16 LE (one whole frame) in, Opus packet out. */
  encode(stream: OpusStream, pcm: Buffer): Promise<Buffer> {
    return this.#enqueue(stream, pcm);
  }

  /** Every worker is up (false while one is being replaced after a crash). */
  get allAlive(): boolean {
    return !this.#closed && this.#slots.every((s) => s.alive);
  }

  /** Streams coded on the calling thread. */
  get inlineStreams(): number {
    return this.#inline.size;
  }

  get openStreams(): number {
    return this.#streamSlot.size + this.#inline.size;
  }

  /**
   * Share of wall time the calling thread spent coding its own streams, 0..1, over the
   * window the last `sampleUtilization()` closed. The workers' utilization leaves this out:
   * with few sessions, all coded here, the workers read idle while the codec work goes on.
   */
  get inlineUtilization(): number {
    return this.#inlineUtilization;
  }

  /** Per-worker figures, and `inlineUtilization`; utilization is measured since the previous call. */
  sampleUtilization(): WorkerStats[] {
    const now = process.hrtime.bigint();
    const elapsed = Number(now - this.#lastSample);
    this.#lastSample = now;
    const inlineNs = this.#inline.takeBusyNs();
    if (elapsed > 0) this.#inlineUtilization = Math.min(1, inlineNs / elapsed);
    return this.#slots.map((s) => s.sample(elapsed));
  }

  /** The last sampled figures, without starting a new window. */
  stats(): WorkerStats[] {
    return this.#slots.map((s) => s.stats());
  }

  /** Workers lost since the start, by reason, over every slot (each was replaced or is being). */
  workerLosses(): Record<WorkerLossReason, number> {
    const sum = newLossCounts();
    for (const slot of this.#slots) {
      const losses = slot.losses();
      for (const reason of WORKER_LOSS_REASONS) sum[reason] += losses[reason];
    }
    return sum;
  }

  /** Stops every worker; pending frames fail. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    this.#inline.failAll(new Error("opus pool shut down"));
    await Promise.all(
      this.#slots.map(async (s) => {
        s.failAll(new Error("opus pool shut down"));
        await s.stop();
      }),
    );
  }

  /**
   * For the process's exit, which terminates worker threads wherever they are (and one
   * terminated inside libopus aborts the process; opus-native-gate.ts): closes every
   * worker's gate, waiting for those inside a call, `maxMs` at most in all, and returns how
   * many workers are still inside one (stuck there). Synchronous, for an `exit` listener:
   * it blocks the calling thread meanwhile. Nothing is coded in a worker after it.
   */
  closeGatesForExit(maxMs: number): number {
    this.#closed = true;
    const deadline = performance.now() + maxMs;
    let inside = 0;
    for (const slot of this.#slots)
      inside += slot.closeGatesForExit(Math.max(0, deadline - performance.now()));
    return inside;
  }

  /**
   * For tests of a worker's death: ends worker `index` as a crash would. Resolves once the
   * pool has failed what it owed and started its replacement.
   */
  killWorkerForTest(index: number): Promise<void> {
    const slot = this.#slots[index];
    if (!slot) return Promise.reject(new RangeError(`no worker ${index}`));
    return slot.terminateForTest();
  }

  #open(role: CodecRole, sampleRate: number): OpusStream {
    if (this.#closed) throw new Error("opus pool is shut down");
    // Refused here, where the caller can handle it: in a worker, a codec that cannot be
    // made throws in its message handler, and the restarted worker re-opens the stream.
    if (!OPUS_SAMPLE_RATES.has(sampleRate)) throw new RangeError(`${sampleRate} Hz is not an Opus rate`);
    const id = this.#nextStreamId++;
    const inline: OpusStream = { id, role, sampleRate, worker: -1 };
    if (this.#inline.tryOpen(this.#openMessage(inline))) return inline;
    // Balance each role on its own: an encoder costs ~5 decoders (npm run bench), and
    // counting streams of both roles together put every session's decoder on one worker
    // and every encoder on the next (measured: 8% against 76% busy).
    const load = (slot: WorkerSlot) => {
      let same = 0;
      for (const s of slot.streams.values()) if (s.role === role) same++;
      return same * 1000 + slot.streams.size;
    };
    let best = 0;
    for (let i = 1; i < this.#slots.length; i++) {
      if (load(this.#slots[i] as WorkerSlot) < load(this.#slots[best] as WorkerSlot)) best = i;
    }
    const stream: OpusStream = { id, role, sampleRate, worker: best };
    this.#streamSlot.set(stream.id, best);
    (this.#slots[best] as WorkerSlot).open(this.#openMessage(stream));
    return stream;
  }

  #openMessage(stream: OpusStream): OpenStream {
    return {
      kind: "open",
      streamId: stream.id,
      role: stream.role,
      sampleRate: stream.sampleRate,
      complexity: this.#options.complexity,
      bitrate: this.#options.bitrate,
    };
  }

  #enqueue(stream: OpusStream, frame: Buffer, op: number = FrameOp.single): Promise<Buffer> {
    if (this.#inline.has(stream.id)) {
      if (this.#closed) return Promise.reject(new Error("opus stream is closed"));
      const out = this.#inline.enqueue(stream.id, op, frame);
      this.#scheduleFlush();
      return out;
    }
    const index = this.#streamSlot.get(stream.id);
    if (index === undefined || this.#closed) return Promise.reject(new Error("opus stream is closed"));
    const out = (this.#slots[index] as WorkerSlot).enqueue(stream.id, op, frame);
    this.#scheduleFlush();
    return out;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      for (const slot of this.#slots) slot.flush();
      // After the workers' batches are on their way, so their work overlaps this.
      this.#inline.run();
    });
  }
}
