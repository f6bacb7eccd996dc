/**
 * The frames a slot (opus-worker-slot.ts) owes its callers: those queued for its worker's
 * next batch, and those in batches sent and not answered yet, each with the promise its
 * caller awaits.
 */
import type { TransferListItem } from "node:worker_threads";
import { type BatchResult, type CodecBatch, packFrames } from "./opus-protocol.ts";

interface PendingFrame {
  readonly resolve: (out: Buffer) => void;
  readonly reject: (err: Error) => void;
}

export class FrameBatches {
  #queueIds: number[] = [];
  #queueOps: number[] = [];
  #queueFrames: Buffer[] = [];
  #queuePending: PendingFrame[] = [];
  readonly #inFlight = new Map<number, PendingFrame[]>();
  #nextBatchId = 1;

  /** Frames queued for the next batch. */
  get queuedFrames(): number {
    return this.#queueFrames.length;
  }

  /** Frames in batches sent and not answered yet. */
  get inFlightFrames(): number {
    let inFlight = 0;
    for (const frames of this.#inFlight.values()) inFlight += frames.length;
    return inFlight;
  }

  /** Some batch sent is not answered yet. */
  get owesBatch(): boolean {
    return this.#inFlight.size > 0;
  }

  /**
   * Queues a frame for the next batch. Held by reference until then: callers hand over
   * fresh buffers and do not reuse them.
   */
  enqueue(streamId: number, op: number, frame: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.#queueIds.push(streamId);
      this.#queueOps.push(op);
      this.#queueFrames.push(frame);
      this.#queuePending.push({ resolve, reject });
    });
  }

  /**
   * Every queued frame packed as one batch, in flight from now on, and the buffers to
   * transfer with it.
   */
  take(): { batch: CodecBatch; transfer: TransferListItem[] } {
    const { data, offsets } = packFrames(this.#queueFrames);
    const streamIds = Int32Array.from(this.#queueIds);
    const ops = Uint8Array.from(this.#queueOps);
    const batch: CodecBatch = { kind: "batch", batchId: this.#nextBatchId++, streamIds, ops, offsets, data };
    this.#inFlight.set(batch.batchId, this.#queuePending);
    this.#clearQueue();
    return { batch, transfer: [data, offsets.buffer, streamIds.buffer, ops.buffer] };
  }

  /** Answers each frame of the batch `result` is for; one already failed is not awaited. */
  settle(result: BatchResult): void {
    const pending = this.#inFlight.get(result.batchId);
    if (!pending) return;
    this.#inFlight.delete(result.batchId);
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i] as PendingFrame;
      const error = result.errors[i];
      const begin = result.offsets[i];
      const end = result.offsets[i + 1];
      if (error !== undefined) p.reject(new Error(error));
      else if (begin === undefined || end === undefined) p.reject(new Error("missing codec output"));
      else p.resolve(Buffer.from(result.data, begin, end - begin));
    }
  }

  /** Fails everything queued or in flight. */
  failAll(err: Error): void {
    for (const pending of this.#inFlight.values()) for (const p of pending) p.reject(err);
    this.#inFlight.clear();
    for (const p of this.#queuePending) p.reject(err);
    this.#clearQueue();
  }

  #clearQueue(): void {
    this.#queueIds = [];
    this.#queueOps = [];
    this.#queueFrames = [];
    this.#queuePending = [];
  }
}
