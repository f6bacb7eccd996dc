/**
 * Messages between the Opus pool (main thread) and its workers. Plain data only, so
 * they cross `postMessage` by structured clone.
 */

export type CodecRole = "decoder" | "encoder";

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

/**
 * Frames for many streams in one message: a postMessage costs more than a decode. All
 * frames travel packed in one transferred buffer (frame i is data[offsets[i]..offsets[i+1]]),
 * so a batch costs one transfer, not one structured clone per frame.
 */
export interface CodecBatch {
  readonly kind: "batch";
  readonly batchId: number;
  readonly streamIds: Int32Array;
  readonly offsets: Uint32Array;
  readonly data: ArrayBuffer;
}

export type ToWorker = OpenStream | CloseStream | CodecBatch;

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
