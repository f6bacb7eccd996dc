/**
 * A pool of Opus worker threads. Each stream (one session's decoder or encoder) is pinned
 * at open to the worker with the fewest streams, and stays there: Opus keeps state between
 * frames. Frames queued in one event-loop turn travel to a worker in one message.
 *
 * A worker that dies is replaced; its streams are re-opened on the new worker with fresh
 * codec state (one audible glitch beats a dead session), and its in-flight frames fail.
 *
 * The first `inlineStreams` streams of each role are not sent to a worker: their frames are
 * coded on the calling thread, in the same end-of-turn flush. A frame handed to a sleeping
 * worker and back costs more CPU than coding it (the two thread wakeups; docs/performance.md,
 * "The first sessions' codecs on the main thread"), and a worker sleeps between frames
 * until it has many streams. The cap bounds what the main thread takes on. Isolation is not
 * lost: a worker shares the process, so a native crash in libopus ends it either way.
 */
import { Worker } from "node:worker_threads";
import { InlineCodecs } from "./opus-inline.ts";
import {
  type CodecBatch,
  type CodecRole,
  FrameOp,
  type FromWorker,
  OPUS_SAMPLE_RATES,
  type OpenStream,
  packSequence,
  SEQUENCE_HEADER_BYTES,
  type ToWorker,
} from "./opus-protocol.ts";

// Built: dist/gateway/opus-worker.js beside main.js. From source (tests, tsx): the .ts
// file, loaded through tsx's API inside the worker (Node 20 does not apply the main
// thread's `--import tsx` hooks to a worker's entry module).
const FROM_SOURCE = import.meta.url.endsWith(".ts");

function newWorker(): Worker {
  if (!FROM_SOURCE) return new Worker(new URL("./opus-worker.js", import.meta.url));
  const entry = new URL("./opus-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true });
}

/** How long a stopping worker may take to finish its queued messages before it is terminated. */
const STOP_GRACE_MS = 2000;

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
}

export interface OpusStream {
  readonly id: number;
  readonly role: CodecRole;
  readonly sampleRate: number;
  /** Index of the worker this stream is pinned to; -1: coded on the calling thread. */
  readonly worker: number;
}

export interface WorkerStats {
  readonly streams: number;
  readonly queuedFrames: number;
  readonly inFlightFrames: number;
  /** Share of wall time spent in libopus since the previous `sampleUtilization()`, 0..1. */
  readonly utilization: number;
  readonly restarts: number;
}

export interface DecodedSequence {
  /** PCM16 LE of every packet, in order (concealment for empty and undecodable ones). */
  readonly pcm: Buffer;
  /** Packets that failed to decode and were concealed instead. */
  readonly undecodable: number;
}

interface PendingFrame {
  readonly resolve: (out: Buffer) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  /** The worker has loaded libopus and not exited since. */
  alive: boolean;
  streams: Map<number, OpusStream>;
  queueIds: number[];
  queueOps: number[];
  queueFrames: Buffer[];
  queuePending: PendingFrame[];
  inFlight: Map<number, PendingFrame[]>;
  busyNs: number;
  utilization: number;
  restarts: number;
}

export class OpusPool {
  readonly #options: OpusPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #streamSlot = new Map<number, number>();
  readonly #inline: InlineCodecs;
  #nextStreamId = 1;
  #nextBatchId = 1;
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
    for (let i = 0; i < options.size; i++) pool.#slots.push(pool.#spawn(i, undefined));
    await Promise.all(pool.#slots.map((s) => s.ready));
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
    const slot = this.#slots[index] as Slot;
    slot.streams.delete(stream.id);
    if (!this.#closed) this.#post(slot, { kind: "close", streamId: stream.id });
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
    return this.#slots.map((s) => {
      if (elapsed > 0) s.utilization = Math.min(1, s.busyNs / elapsed);
      s.busyNs = 0;
      return this.#stats(s);
    });
  }

  /** The last sampled figures, without starting a new window. */
  stats(): WorkerStats[] {
    return this.#slots.map((s) => this.#stats(s));
  }

  /** Stops every worker; pending frames fail. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    this.#inline.failAll(new Error("opus pool shut down"));
    await Promise.all(
      this.#slots.map(async (s) => {
        this.#failAll(s, new Error("opus pool shut down"));
        await this.#stopWorker(s.worker);
      }),
    );
  }

  /**
   * Asks the worker to exit after the messages already sent (opus-protocol.ts, StopWorker),
   * and terminates it only if it has not within STOP_GRACE_MS (a worker stuck in libopus).
   */
  async #stopWorker(worker: Worker): Promise<void> {
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ kind: "stop" } satisfies ToWorker);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), STOP_GRACE_MS);
    });
    const outcome = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (outcome === "late") await worker.terminate();
  }

  #stats(s: Slot): WorkerStats {
    let inFlight = 0;
    for (const frames of s.inFlight.values()) inFlight += frames.length;
    return {
      streams: s.streams.size,
      queuedFrames: s.queueFrames.length,
      inFlightFrames: inFlight,
      utilization: s.utilization,
      restarts: s.restarts,
    };
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
    const load = (slot: Slot) => {
      let same = 0;
      for (const s of slot.streams.values()) if (s.role === role) same++;
      return same * 1000 + slot.streams.size;
    };
    let best = 0;
    for (let i = 1; i < this.#slots.length; i++) {
      if (load(this.#slots[i] as Slot) < load(this.#slots[best] as Slot)) best = i;
    }
    const stream: OpusStream = { id, role, sampleRate, worker: best };
    const slot = this.#slots[best] as Slot;
    slot.streams.set(stream.id, stream);
    this.#streamSlot.set(stream.id, best);
    this.#post(slot, this.#openMessage(stream));
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
    const slot = this.#slots[index] as Slot;
    return new Promise<Buffer>((resolve, reject) => {
      // Held by reference until the flush at the end of this turn packs it (callers hand
      // over fresh buffers and do not reuse them).
      slot.queueIds.push(stream.id);
      slot.queueOps.push(op);
      slot.queueFrames.push(frame);
      slot.queuePending.push({ resolve, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      for (const slot of this.#slots) this.#flush(slot);
      // After the workers' batches are on their way, so their work overlaps this.
      this.#inline.run();
    });
  }

  #flush(slot: Slot): void {
    const frames = slot.queueFrames;
    const n = frames.length;
    if (n === 0) return;
    let total = 0;
    for (const f of frames) total += f.length;
    const data = new ArrayBuffer(total);
    const packed = new Uint8Array(data);
    const offsets = new Uint32Array(n + 1);
    for (let i = 0; i < n; i++) {
      const f = frames[i] as Buffer;
      packed.set(f, offsets[i] as number);
      offsets[i + 1] = (offsets[i] as number) + f.length;
    }
    const streamIds = Int32Array.from(slot.queueIds);
    const ops = Uint8Array.from(slot.queueOps);
    const batch: CodecBatch = { kind: "batch", batchId: this.#nextBatchId++, streamIds, ops, offsets, data };
    slot.inFlight.set(batch.batchId, slot.queuePending);
    slot.queueIds = [];
    slot.queueOps = [];
    slot.queueFrames = [];
    slot.queuePending = [];
    this.#post(slot, batch, [data, offsets.buffer, streamIds.buffer, ops.buffer]);
  }

  #post(slot: Slot, msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    slot.worker.postMessage(msg, transfer);
  }

  #spawn(index: number, previous: Slot | undefined): Slot {
    const worker = newWorker();
    let markReady: () => void = () => {};
    let failReady: (err: Error) => void = () => {};
    const slot: Slot = previous ?? {
      worker,
      ready: Promise.resolve(),
      alive: false,
      streams: new Map(),
      queueIds: [],
      queueOps: [],
      queueFrames: [],
      queuePending: [],
      inFlight: new Map(),
      busyNs: 0,
      utilization: 0,
      restarts: 0,
    };
    slot.worker = worker;
    slot.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    worker.on("message", (msg: FromWorker) => {
      if (msg.kind === "ready") {
        slot.alive = true;
        markReady();
        return;
      }
      slot.busyNs += msg.busyNs;
      const pending = slot.inFlight.get(msg.batchId);
      if (!pending) return;
      slot.inFlight.delete(msg.batchId);
      for (let i = 0; i < pending.length; i++) {
        const p = pending[i] as PendingFrame;
        const error = msg.errors[i];
        const begin = msg.offsets[i];
        const end = msg.offsets[i + 1];
        if (error !== undefined) p.reject(new Error(error));
        else if (begin === undefined || end === undefined) p.reject(new Error("missing codec output"));
        else p.resolve(Buffer.from(msg.data, begin, end - begin));
      }
    });
    worker.on("error", (err) => {
      failReady(err);
      this.#failAll(slot, err);
    });
    worker.on("exit", () => {
      if (this.#closed || slot.worker !== worker) return;
      this.#failAll(slot, new Error("opus worker exited"));
      slot.alive = false;
      slot.restarts++;
      this.#spawn(index, slot);
      for (const stream of slot.streams.values()) this.#post(slot, this.#openMessage(stream));
    });
    return slot;
  }

  #failAll(slot: Slot, err: Error): void {
    for (const pending of slot.inFlight.values()) for (const p of pending) p.reject(err);
    slot.inFlight.clear();
    for (const p of slot.queuePending) p.reject(err);
    slot.queueIds = [];
    slot.queueOps = [];
    slot.queueFrames = [];
    slot.queuePending = [];
  }
}
