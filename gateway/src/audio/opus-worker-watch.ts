/**
 * When a slot's Opus worker (opus-worker-slot.ts) is lost without exiting, and how any of
 * its workers is ended without aborting the process.
 *
 * A worker that stops answering (stuck in a loop, in libopus or in our code) would hold
 * its frames and its streams for good, and never exit: a worker that owes a batch and has
 * answered nothing for `stallMs` is taken as crashed. Its frames fail, it is terminated
 * without waiting (native code may never come back to be stopped), and a new worker takes
 * its streams at once; its exit, whenever it comes, is ignored like any old worker's.
 * A new worker that is not ready within `readyMs` (stuck while it loads) is taken as hung
 * the same way, and replaced after the delay of a worker that failed to load: until then
 * the frames sent to it wait in its port, and would wait for good.
 *
 * A worker is terminated only between its calls into libopus (opus-native-gate.ts):
 * terminated inside one, the addon aborts the whole process. One stuck inside a call for
 * good is left running, and counted (`retiring`) until it comes out, if ever.
 */
import type { Worker } from "node:worker_threads";
import { closeNativeGate, closeNativeGatesNow, type NativeGate, newNativeGate } from "./opus-native-gate.ts";
import type { WorkerLossCause } from "./opus-worker-loss.ts";

/** What the watch reads of its slot, and where it gives up on the slot's worker. */
export interface WatchedSlot {
  /** The worker that takes the slot's messages; none while a delayed replacement is pending. */
  current(): Worker | undefined;
  /** The current worker has loaded libopus and not exited since. */
  alive(): boolean;
  /** The slot has sent batches that are not answered yet. */
  owesBatch(): boolean;
  /** The current worker is given up on: what it owed fails, and it is replaced. */
  lose(err: Error, cause: WorkerLossCause): void;
}

export interface WorkerWatchOptions {
  /** A worker owing a batch and silent this long is taken as hung, ms; 0: never. */
  readonly stallMs: number;
  /** A new worker not ready this long after it was started is taken as hung, ms; 0: never. */
  readonly readyMs: number;
  /** A monotonic clock, ms (a wall-clock step must not look like a hang). */
  readonly now: () => number;
  /** Runs `fn` after `ms`; returns what cancels it. */
  readonly schedule: (fn: () => void, ms: number) => () => void;
}

export class WorkerWatch {
  readonly #slot: WatchedSlot;
  readonly #stallMs: number;
  readonly #readyMs: number;
  readonly #now: () => number;
  readonly #schedule: (fn: () => void, ms: number) => () => void;
  /**
   * The workers started here that have not exited, retiring ones included, each with its
   * gate into libopus (closed before the worker is terminated, and at the process's exit).
   */
  readonly #running = new Map<Worker, NativeGate>();
  /** Workers being ended, not yet terminated (inside a call into libopus). */
  #retiring = 0;
  /**
   * When the worker last showed it was working: its last answer, its ready, or a batch sent
   * while it owed none (it was idle until then).
   */
  #progressAt = 0;
  /** Set while a stall check is scheduled: cancels it. */
  #cancelStallCheck: (() => void) | undefined;
  /** Set while the current worker has a deadline to be ready: cancels it. */
  #cancelReadyCheck: (() => void) | undefined;
  /** The slot is stopping: an exit is expected, and nothing is judged any more. */
  #stopped = false;

  constructor(slot: WatchedSlot, options: WorkerWatchOptions) {
    this.#slot = slot;
    this.#stallMs = options.stallMs;
    this.#readyMs = options.readyMs;
    this.#now = options.now;
    this.#schedule = options.schedule;
  }

  /** Workers ended by the slot that are still running, inside a call into libopus. */
  get retiring(): number {
    return this.#retiring;
  }

  /** Starts a worker with a gate of its own into libopus, kept to end it by (`retire`). */
  startWorker(newWorker: (gate: NativeGate) => Worker): Worker {
    const gate = newNativeGate();
    const worker = newWorker(gate);
    this.#running.set(worker, gate);
    worker.once("exit", () => this.#running.delete(worker));
    return worker;
  }

  /**
   * As the process exits: closes the gate of every worker still running, waiting `maxMs` at
   * most for those inside libopus (opus-native-gate.ts, `closeNativeGatesNow`), and returns
   * how many are still inside. Blocks the calling thread; the workers code nothing more.
   */
  closeGatesForExit(maxMs: number): number {
    return closeNativeGatesNow(this.#running.values(), maxMs);
  }

  /**
   * Gives the new `worker` `readyMs` to say it is ready; one that has not by then is lost,
   * and `failReady` fails its start (OpusPool.start awaits the first worker's).
   */
  awaitReady(worker: Worker, failReady: (err: Error) => void): void {
    if (this.#readyMs > 0)
      this.#cancelReadyCheck = this.#schedule(() => {
        this.#cancelReadyCheck = undefined;
        this.#checkReady(worker, failReady);
      }, this.#readyMs);
  }

  /** The current worker said it is ready, or is lost: its deadline to be ready is off. */
  clearReadyDeadline(): void {
    this.#cancelReadyCheck?.();
    this.#cancelReadyCheck = undefined;
  }

  /** The current worker showed it is working: its silence counts from now. */
  progressed(): void {
    this.#progressAt = this.#now();
  }

  /** A batch was sent: the worker owes one, and is checked until it owes none. */
  batchSent(): void {
    this.#armStallCheck(this.#stallMs);
  }

  /** The slot is stopping: no check is left scheduled, and none judges any more. */
  stop(): void {
    this.#stopped = true;
    this.#cancelStallCheck?.();
    this.#cancelStallCheck = undefined;
    this.clearReadyDeadline();
  }

  /**
   * Terminates `worker` once it is outside libopus (opus-native-gate.ts); resolves then.
   * Until then it is counted as retiring; if it never comes out, this never resolves. It is
   * not unref'd: a process left with nothing else would start to exit, and exiting
   * terminates its workers just as `terminate()` does, aborting on one inside libopus.
   */
  retire(worker: Worker): Promise<void> {
    const gate = this.#running.get(worker);
    // Exited already (every worker of the slot is started by startWorker): nothing to end.
    if (!gate) return Promise.resolve();
    this.#retiring++;
    return (
      closeNativeGate(gate)
        .then(() => worker.terminate())
        // A worker that has exited already: its termination has nothing left to do.
        .then(
          () => {},
          () => {},
        )
        .finally(() => {
          this.#retiring--;
        })
    );
  }

  /**
   * `worker`'s time to say it is ready is up. Decided after the poll phase, as a stall is:
   * after a stall of the main thread, its ready may be waiting unread.
   */
  #checkReady(worker: Worker, failReady: (err: Error) => void): void {
    setImmediate(() => {
      if (this.#stopped || this.#slot.current() !== worker || this.#slot.alive()) return;
      const err = new Error(`opus worker not ready after ${this.#readyMs} ms`);
      // A first worker's start fails (OpusPool.start), as for one that exits while loading.
      failReady(err);
      this.#slot.lose(err, { reason: "not_ready", readyMs: this.#readyMs });
      // Not awaited, as for a hung worker: a thread stuck in native code may never return.
      void this.retire(worker);
    });
  }

  /**
   * Schedules a look at whether the worker still answers, unless one is scheduled. Checks
   * run only while batches are owed: the slot of an idle worker keeps no timer.
   */
  #armStallCheck(ms: number): void {
    if (this.#cancelStallCheck || this.#stallMs <= 0 || this.#stopped) return;
    this.#cancelStallCheck = this.#schedule(() => {
      this.#cancelStallCheck = undefined;
      this.#checkStall();
    }, ms);
  }

  #checkStall(): void {
    if (this.#stopped || !this.#slot.owesBatch()) return;
    const worker = this.#slot.current();
    // A worker still loading is not judged here: its batches wait in its port until it is
    // ready, and its ready deadline (`readyMs`) bounds that wait.
    if (!this.#slot.alive() || !worker) return this.#armStallCheck(this.#stallMs);
    const silent = this.#now() - this.#progressAt;
    if (silent < this.#stallMs) return this.#armStallCheck(this.#stallMs - silent);
    // Decided after the poll phase, not here in the timers phase: after a stall of the main
    // thread, the worker's answer may be waiting unread, and the poll phase reads it first.
    setImmediate(() => {
      if (this.#stopped || this.#slot.current() !== worker || !this.#slot.owesBatch()) return;
      const since = this.#now() - this.#progressAt;
      if (since < this.#stallMs) return this.#armStallCheck(this.#stallMs - since);
      this.#replaceHung(worker, since);
    });
  }

  /** The worker answers nothing: handled as a crash, without waiting for it to exit. */
  #replaceHung(worker: Worker, silentMs: number): void {
    this.#slot.lose(new Error("opus worker stalled"), { reason: "hung", silentMs });
    // Not awaited: a thread stuck in native code may never come back to be terminated.
    void this.retire(worker);
  }
}
