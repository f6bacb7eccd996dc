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

/** Frames for many streams in one message: a postMessage costs more than a decode. */
export interface CodecBatch {
  readonly kind: "batch";
  readonly batchId: number;
  readonly streamIds: number[];
  readonly frames: Uint8Array[];
}

export type ToWorker = OpenStream | CloseStream | CodecBatch;

export interface BatchResult {
  readonly kind: "results";
  readonly batchId: number;
  /** One entry per frame, in order: the output bytes, or an error message. */
  readonly outputs: (Uint8Array | string)[];
  /** Time the worker spent in libopus for this batch, in nanoseconds. */
  readonly busyNs: number;
}

export interface WorkerReady {
  readonly kind: "ready";
}

export type FromWorker = BatchResult | WorkerReady;
