/**
 * Messages between the Opus pool (main thread) and its workers. Plain data only, so
 * they cross `postMessage` by structured clone.
 */

export type CodecRole = "decoder" | "encoder";

/** The rates libopus codes at (RFC 6716 section 2); any other fails when its codec is made. */
export const OPUS_SAMPLE_RATES: ReadonlySet<number> = new Set([8000, 12000, 16000, 24000, 48000]);

export interface OpenStream {
  readonly kind: "open";
  readonly streamId: number;
  readonly role: CodecRole;
  readonly sampleRate: number;
  /** Encoder only: libopus complexity 0..10. */
  readonly complexity: number;
  /** Encoder only: bits per second. */
  readonly bitrate: number;
}

export interface CloseStream {
  readonly kind: "close";
  readonly streamId: number;
}

/** What a worker does with one frame of a batch. */
export const FrameOp = {
  /** Decode one Opus packet or encode one PCM frame, as the stream's role says. */
  single: 0,
  /**
   * Decoders only: several Opus packets in order, decoded one after the other into one
   * PCM buffer (see packSequence). An empty packet is concealed; so is one that fails to
   * decode, and the output counts those (SEQUENCE_HEADER_BYTES).
   */
  sequence: 1,
} as const;

/**
 * Frames for many streams in one message: a postMessage costs more than a decode. All
 * frames travel packed in one transferred buffer (frame i is data[offsets[i]..offsets[i+1]]),
 * so a batch costs one transfer, not one structured clone per frame.
 */
export interface CodecBatch {
  readonly kind: "batch";
  readonly batchId: number;
  readonly streamIds: Int32Array;
  /** FrameOp per frame. */
  readonly ops: Uint8Array;
  readonly offsets: Uint32Array;
  readonly data: ArrayBuffer;
}

/**
 * The worker finishes the messages before this one, then exits. Terminating it instead can
 * catch libopus half-way through making a codec, and an exception thrown from native code
 * while the thread is being torn down aborts the whole process (seen in CI).
 */
export interface StopWorker {
  readonly kind: "stop";
}

export type ToWorker = OpenStream | CloseStream | CodecBatch | StopWorker;

export interface BatchResult {
  readonly kind: "results";
  readonly batchId: number;
  /** Outputs packed like the batch: output i is data[offsets[i]..offsets[i+1]]. */
  readonly offsets: Uint32Array;
  readonly data: ArrayBuffer;
  /** Frames that failed, by index, with the codec's message (their output is empty). */
  readonly errors: Record<number, string>;
  /** Time the worker spent in libopus for this batch, in nanoseconds. */
  readonly busyNs: number;
}

export interface WorkerReady {
  readonly kind: "ready";
}

export type FromWorker = BatchResult | WorkerReady;

/**
 * Frames packed as a batch and its results travel: one buffer to transfer, frame i at
 * data[offsets[i]..offsets[i+1]].
 */
export function packFrames(frames: readonly Uint8Array[]): {
  data: ArrayBuffer;
  offsets: Uint32Array<ArrayBuffer>;
} {
  let total = 0;
  for (const f of frames) total += f.length;
  const data = new ArrayBuffer(total);
  const packed = new Uint8Array(data);
  const offsets = new Uint32Array(frames.length + 1);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as Uint8Array;
    packed.set(f, offsets[i] as number);
    offsets[i + 1] = (offsets[i] as number) + f.length;
  }
  return { data, offsets };
}

/** Packets in one sequence frame at most (its count is one byte). */
export const MAX_SEQUENCE_PACKETS = 255;

/**
 * A sequence frame: u8 packet count, u16 LE length per packet, then the packets.
 * Throws on more than MAX_SEQUENCE_PACKETS packets or one longer than 65,535 bytes.
 */
export function packSequence(packets: readonly Buffer[]): Buffer {
  if (packets.length > MAX_SEQUENCE_PACKETS) throw new RangeError("too many packets in one sequence");
  let size = 1 + 2 * packets.length;
  for (const p of packets) {
    if (p.length > 0xffff) throw new RangeError("opus packet too long for a sequence");
    size += p.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = packets.length;
  let at = 1 + 2 * packets.length;
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i] as Buffer;
    out.writeUInt16LE(p.length, 1 + 2 * i);
    p.copy(out, at);
    at += p.length;
  }
  return out;
}

/** The packets of a sequence frame; undefined if its lengths do not add up. */
export function unpackSequence(frame: Buffer): Buffer[] | undefined {
  if (frame.length < 1) return undefined;
  const count = frame[0] as number;
  let at = 1 + 2 * count;
  if (frame.length < at) return undefined;
  const packets: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const length = frame.readUInt16LE(1 + 2 * i);
    if (at + length > frame.length) return undefined;
    packets.push(frame.subarray(at, at + length));
    at += length;
  }
  return at === frame.length ? packets : undefined;
}

/** Bytes before the PCM in a sequence's output: u16 LE count of undecodable packets. */
export const SEQUENCE_HEADER_BYTES = 2;
