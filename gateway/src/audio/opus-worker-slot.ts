/**
 * One Opus worker thread of the pool (opus-pool.ts) and what it owes: the streams pinned to
 * it, the frames queued for its next batch, and the batches it has not answered yet.
 *
 * A worker that exits unasked is replaced at once: what it owed fails, and its streams are
 * re-opened on the new worker with fresh codec state (one audible glitch beats a dead
 * session). A worker that exits before it has loaded libopus is replaced after a delay
 * that doubles with each such exit in a row (RESTART_DELAY_MS): one that can never load
 * would otherwise be started again and again, a thread start-up apart. So is a loaded
 * worker that ends before it has answered a batch, when the worker before it did too: one
 * that dies on a stream it re-opens would otherwise loop just as fast. While the slot
 * waits, its frames fail at once instead of waiting for a worker.
 *
 * A worker that hangs (owes a batch and answers nothing, or never gets ready) is lost the
 * same way, judged so by the slot's watch (opus-worker-watch.ts), which also ends every
 * worker the slot gives up on without aborting the process. The frames queued and in
 * flight, and their promises, are kept in opus-worker-batches.ts.
 *
 * Each loss is counted by reason and logged (opus-worker-loss.ts).
 */
import type { Worker } from "node:worker_threads";
import type { NativeGate } from "./opus-native-gate.ts";
import type { FromWorker, OpenStream, StopWorker, ToWorker } from "./opus-protocol.ts";
import { FrameBatches } from "./opus-worker-batches.ts";
import { RESTART_DELAY_MS, STOP_GRACE_MS, WORKER_READY_MS, WORKER_STALL_MS } from "./opus-worker-bounds.ts";
import {
  newLossCounts,
  type WorkerLossCause,
  type WorkerLossLog,
  type WorkerLossReason,
} from "./opus-worker-loss.ts";
import { newOpusWorker } from "./opus-worker-thread.ts";
import { type WatchedSlot, WorkerWatch } from "./opus-worker-watch.ts";

export interface WorkerStats {
  readonly streams: number;
  readonly queuedFrames: number;
  readonly inFlightFrames: number;
  /** Share of wall time spent in libopus since the previous `sampleUtilization()`, 0..1. */
  readonly utilization: number;
  /** Workers started in place of one that died, hung or failed to load. */
  readonly restarts: number;
  /**
   * Of those, workers replaced as hung: loaded but owing a batch and silent for `stallMs`,
   * or not ready within `readyMs`.
   */
  readonly stalls: number;
  /**
   * Workers ended by the slot (hung, late to stop) that are still running, because they are
   * inside a call into libopus and cannot be terminated safely there: each is terminated
   * when it comes out. One that stays above 0 is a thread stuck in libopus, taking a core.
   */
  readonly retiring: number;
}

export interface WorkerSlotOptions {
  /**
   * Injected for tests; newOpusWorker by default. A worker that never touches `gate` is
   * taken as outside libopus, and is terminated at once.
   */
  readonly newWorker?: (gate: NativeGate) => Worker;
  /** Runs `fn` after `ms` (the delayed replacement); injected for tests, an unref'd timer by default. */
  readonly schedule?: (fn: () => void, ms: number) => () => void;
  /** A worker owing a batch and silent this long is taken as hung, ms; WORKER_STALL_MS by default, 0: never. */
  readonly stallMs?: number;
  /** A new worker not ready this long after it was started is taken as hung, ms; WORKER_READY_MS by default, 0: never. */
  readonly readyMs?: number;
  /** A monotonic clock, ms (a wall-clock step must not look like a hang); performance.now by default. */
  readonly now?: () => number;
  /** Where each lost worker is logged (the pool's, with the slot's index); none by default. */
  readonly lossLog?: WorkerLossLog;
}

function unrefTimer(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
}

export class WorkerSlot {
  readonly #options: WorkerSlotOptions;
  /** The worker that takes this slot's messages; none while a delayed replacement is pending. */
  #worker: Worker | undefined;
  readonly #watch: WorkerWatch;
  #ready: Promise<void> = Promise.resolve();
  /** The worker has loaded libopus and not exited since. */
  #alive = false;
  /** Streams pinned here, by id: their open message, sent again to a replacement worker. */
  readonly streams = new Map<number, OpenStream>();
  readonly #frames = new FrameBatches();
  #busyNs = 0;
  #utilization = 0;
  /** Workers lost, by reason: each was replaced (or its replacement is pending). */
  readonly #losses = newLossCounts();
  /**
   * Workers in a row that ended (exited, or were taken as hung) before they had answered a
   * batch: loaded or not, none has shown it can code the streams pinned here.
   */
  #failedStarts = 0;
  /** Set while a delayed replacement is pending: cancels it. */
  #cancelRestart: (() => void) | undefined;
  /** `stop` was called: an exit is expected, not a crash, and nothing is replaced. */
  #stopped = false;
  readonly #now: () => number;

  constructor(options: WorkerSlotOptions = {}) {
    this.#options = options;
    this.#now = options.now ?? performance.now.bind(performance);
    const slot: WatchedSlot = {
      current: () => this.#worker,
      alive: () => this.#alive,
      owesBatch: () => this.#frames.owesBatch,
      lose: (err, cause) => this.#lose(err, cause),
    };
    this.#watch = new WorkerWatch(slot, {
      stallMs: options.stallMs ?? WORKER_STALL_MS,
      readyMs: options.readyMs ?? WORKER_READY_MS,
      now: this.#now,
      schedule: options.schedule ?? unrefTimer,
    });
    this.#worker = this.#spawn();
  }

  /** Resolves once the current worker has loaded libopus. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Pins the stream here and opens its codec in the worker. */
  open(msg: OpenStream): void {
    this.streams.set(msg.streamId, msg);
    // While a replacement is pending, the new worker gets it with the others.
    this.#worker?.postMessage(msg satisfies ToWorker);
  }

  /** Releases the stream's codec state (nothing to tell a worker that is stopping or gone). */
  close(streamId: number): void {
    this.streams.delete(streamId);
    if (!this.#stopped) this.#worker?.postMessage({ kind: "close", streamId } satisfies ToWorker);
  }

  /**
   * Queues a frame for the next `flush`. Held by reference until then: callers hand over
   * fresh buffers and do not reuse them.
   */
  enqueue(streamId: number, op: number, frame: Buffer): Promise<Buffer> {
    return this.#frames.enqueue(streamId, op, frame);
  }

  /** Sends every queued frame to the worker in one message, its buffers transferred. */
  flush(): void {
    if (this.#frames.queuedFrames === 0) return;
    const worker = this.#worker;
    if (!worker) return this.failAll(new Error("opus worker restarting"));
    // A worker that owed nothing was idle until now: its silence counts from here.
    if (!this.#frames.owesBatch) this.#watch.progressed();
    const { batch, transfer } = this.#frames.take();
    worker.postMessage(batch satisfies ToWorker, transfer);
    this.#watch.batchSent();
  }

  /** Closes the utilization window of `elapsedNs` and returns the figures. */
  sample(elapsedNs: number): WorkerStats {
    if (elapsedNs > 0) this.#utilization = Math.min(1, this.#busyNs / elapsedNs);
    this.#busyNs = 0;
    return this.stats();
  }

  /** The last sampled figures. */
  stats(): WorkerStats {
    return {
      streams: this.streams.size,
      queuedFrames: this.#frames.queuedFrames,
      inFlightFrames: this.#frames.inFlightFrames,
      utilization: this.#utilization,
      restarts: this.#losses.exited + this.#losses.hung + this.#losses.not_ready,
      stalls: this.#losses.hung + this.#losses.not_ready,
      retiring: this.#watch.retiring,
    };
  }

  /** Workers lost since the slot started, by reason. */
  losses(): Readonly<Record<WorkerLossReason, number>> {
    return { ...this.#losses };
  }

  /** Fails everything queued or in flight. */
  failAll(err: Error): void {
    this.#frames.failAll(err);
  }

  /**
   * Asks the worker to exit after the messages already sent (opus-protocol.ts, StopWorker),
   * and terminates it only if it has not within STOP_GRACE_MS (a worker stuck in a loop or
   * in libopus), as soon as it is outside libopus. One still inside the same call another
   * STOP_GRACE_MS later is stuck there: it is left running, and stop returns.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch.stop();
    // A pending replacement is called off; the worker it replaces has exited or is being terminated.
    this.#cancelRestart?.();
    this.#cancelRestart = undefined;
    const worker = this.#worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ kind: "stop" } satisfies StopWorker);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), STOP_GRACE_MS);
    });
    const outcome = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (outcome !== "late") return;
    const retired = this.#watch.retire(worker);
    const stuck = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_GRACE_MS);
    });
    await Promise.race([retired, stuck]);
    clearTimeout(timer);
  }

  /**
   * As the process exits: no worker of the slot is left inside libopus, `maxMs` at most;
   * returns how many still are (WorkerWatch.closeGatesForExit).
   */
  closeGatesForExit(maxMs: number): number {
    return this.#watch.closeGatesForExit(maxMs);
  }

  /**
   * For tests of a worker's death: ends it as a crash would, between two calls into
   * libopus (the only moment it is safe to); resolves once it is replaced.
   */
  async terminateForTest(): Promise<void> {
    if (this.#worker) await this.#watch.retire(this.#worker);
  }

  #spawn(): Worker {
    const worker = this.#watch.startWorker(this.#options.newWorker ?? newOpusWorker);
    let markReady: () => void = () => {};
    let failReady: (err: Error) => void = () => {};
    this.#ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    // Only the first worker's start is awaited (OpusPool.start); a replacement that fails
    // is handled by the exit below, not by an unhandled rejection ending the process.
    this.#ready.catch(() => {});
    this.#watch.awaitReady(worker, failReady);
    worker.on("message", (msg: FromWorker) => {
      // A worker replaced as hung may still answer before its termination takes: what it
      // owed has failed already, and its ready must not mark the new worker alive.
      if (this.#worker !== worker) return;
      this.#watch.progressed();
      if (msg.kind === "ready") {
        this.#alive = true;
        this.#watch.clearReadyDeadline();
        markReady();
        return;
      }
      this.#busyNs += msg.busyNs;
      this.#failedStarts = 0;
      this.#frames.settle(msg);
    });
    // What ended the worker, when an exception did: told in the log line of its exit.
    let thrown: unknown;
    worker.on("error", (err) => {
      thrown = err;
      failReady(err);
      // Not the frames of the worker that replaced it.
      if (this.#worker === worker) this.failAll(err);
    });
    worker.on("exit", (code) => {
      // A worker can exit before it is ready without an `error` (process.exit in a module it
      // loads): its start must still fail, or OpusPool.start would wait for good. After the
      // worker was ready, or after an `error`, this rejects nothing.
      failReady(new Error(`opus worker exited (code ${code}) before it was ready`));
      if (this.#stopped || this.#worker !== worker) return;
      this.#lose(new Error("opus worker exited"), { reason: "exited", code, thrown });
    });
    return worker;
  }

  /**
   * The current worker is gone or given up on: what it owed fails, and the next is started
   * at once if it had loaded after a worker that worked, or else after a delay that doubles
   * with each worker in a row that did not work (RESTART_DELAY_MS). Until then there is no
   * worker, and frames fail at once.
   */
  #lose(err: Error, cause: WorkerLossCause): void {
    const wasReady = this.#alive;
    this.#alive = false;
    this.#losses[cause.reason]++;
    this.#watch.clearReadyDeadline();
    this.failAll(err);
    const atOnce = wasReady && this.#failedStarts === 0;
    this.#failedStarts++;
    const delay = atOnce
      ? 0
      : Math.min(RESTART_DELAY_MS.first * 2 ** (this.#failedStarts - 1), RESTART_DELAY_MS.max);
    this.#options.lossLog?.lost({ cause, streams: this.streams.size, restartDelayMs: delay }, this.#now());
    if (atOnce) return this.#replace();
    this.#worker = undefined;
    this.#cancelRestart = (this.#options.schedule ?? unrefTimer)(() => {
      this.#cancelRestart = undefined;
      if (!this.#stopped) this.#replace();
    }, delay);
  }

  /** A new worker in place of the last, with every stream pinned here opened on it. */
  #replace(): void {
    const worker = this.#spawn();
    this.#worker = worker;
    for (const open of this.streams.values()) worker.postMessage(open satisfies ToWorker);
  }
}
