/**
 * The Opus pool's streams coded on the calling thread (opus-pool.ts, `inlineStreams`): at
 * most `cap` of each role. Frames queue until the pool's end-of-turn flush runs them, so a
 * caller sees the same promise either way, and its worker batches leave first.
 */
import { CodecTable } from "./opus-codecs.ts";
import type { CodecRole, OpenStream } from "./opus-protocol.ts";

interface InlineJob {
  readonly id: number;
  readonly op: number;
  readonly frame: Buffer;
  readonly resolve: (out: Buffer) => void;
  readonly reject: (err: Error) => void;
}

export class InlineCodecs {
  readonly #cap: number;
  readonly #codecs = new CodecTable();
  readonly #roles = new Map<number, CodecRole>();
  readonly #count: Record<CodecRole, number> = { decoder: 0, encoder: 0 };
  #queue: InlineJob[] = [];
  /** Time spent in `run` since the last `takeBusyNs` (the main thread's share of codec work). */
  #busyNs = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  /** Opens the stream here if its role is under the cap; false: it belongs in a worker. */
  tryOpen(msg: OpenStream): boolean {
    if (this.#count[msg.role] >= this.#cap) return false;
    // An encoder is made at open, and libopus may refuse it (it throws): count the stream
    // only once it is open.
    this.#codecs.open(msg);
    this.#roles.set(msg.streamId, msg.role);
    this.#count[msg.role]++;
    return true;
  }

  has(streamId: number): boolean {
    return this.#roles.has(streamId);
  }

  get size(): number {
    return this.#roles.size;
  }

  /**
   * Releases the stream; its frames still queued fail when the queue runs. False: the
   * stream is not one of these.
   */
  close(streamId: number): boolean {
    const role = this.#roles.get(streamId);
    if (role === undefined) return false;
    this.#roles.delete(streamId);
    this.#count[role]--;
    this.#codecs.close(streamId);
    return true;
  }

  enqueue(streamId: number, op: number, frame: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.#queue.push({ id: streamId, op, frame, resolve, reject });
    });
  }

  /** Codes every queued frame, in order. */
  run(): void {
    const jobs = this.#queue;
    if (jobs.length === 0) return;
    this.#queue = [];
    const started = process.hrtime.bigint();
    for (const job of jobs) {
      if (!this.#roles.has(job.id)) {
        job.reject(new Error("opus stream is closed"));
        continue;
      }
      try {
        job.resolve(this.#codecs.run(job.id, job.op, job.frame));
      } catch (err) {
        job.reject(new Error((err as Error).message || "codec error"));
      }
    }
    this.#busyNs += Number(process.hrtime.bigint() - started);
  }

  /** Nanoseconds spent coding since the previous call. */
  takeBusyNs(): number {
    const ns = this.#busyNs;
    this.#busyNs = 0;
    return ns;
  }

  failAll(err: Error): void {
    for (const job of this.#queue) job.reject(err);
    this.#queue = [];
  }
}
