/**
 * What the Opus worker slot tests share: a stream to open, a frame to code, a worker factory
 * that records each worker it starts and its exit, and the slot's timers on a manual clock.
 * The workers are real threads; only what they run differs from test to test.
 */
import { Worker } from "node:worker_threads";
import { GATE, type NativeGate } from "../../src/audio/opus-native-gate.ts";
import { FrameOp, type OpenStream } from "../../src/audio/opus-protocol.ts";
import type { WorkerSlot, WorkerSlotOptions } from "../../src/audio/opus-worker-slot.ts";
import type { ManualTimers } from "./manual-timers.ts";

export const ENCODER: OpenStream = {
  kind: "open",
  streamId: 1,
  role: "encoder",
  sampleRate: 24000,
  complexity: 5,
  bitrate: 24000,
};
export const SILENCE = Buffer.alloc(1440 * 2);

/** A real worker thread that fails as one that cannot load libopus would: before it is ready. */
export const unloadable = (): Worker => new Worker("throw new Error('cannot load libopus')", { eval: true });

/** A worker that loads, then ends on the first stream it is asked to open (as a poison stream would). */
export const diesOnOpen = (): Worker =>
  new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (m) => { if (m.kind === "open") process.exit(1); });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true },
  );

/** A worker that loads, then loops for good on its first batch, as one stuck in libopus would. */
export const hanging = (): Worker =>
  new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (m) => { if (m.kind === "batch") for (;;); });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true },
  );

/**
 * A worker that, on its first batch, enters the gate as a call into libopus would and stays
 * inside until `release` is set (a call that never returns), then leaves it as
 * opus-worker.ts does (leaveNative) and answers nothing more.
 */
export const stuckInLibopus = (gate: NativeGate, release: Int32Array): Worker =>
  new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const { gate, release } = workerData;
     parentPort.on("message", (m) => {
       if (m.kind !== "batch") return;
       Atomics.compareExchange(gate, 0, ${GATE.OUTSIDE}, ${GATE.INSIDE});
       Atomics.notify(gate, 0);
       Atomics.wait(release, 0, 0);
       if (Atomics.compareExchange(gate, 0, ${GATE.INSIDE}, ${GATE.OUTSIDE}) === ${GATE.AWAITED}) {
         Atomics.store(gate, 0, ${GATE.CLOSED});
         Atomics.notify(gate, 0);
       }
     });
     parentPort.postMessage({ kind: "ready" });`,
    // Plain CommonJS, also in a child started with --input-type=module (opus-exit.test.ts).
    { eval: true, execArgv: [], workerData: { gate, release } },
  );

/** A real worker thread stuck while it loads (a loop, a read that never returns): it never says ready. */
export const neverReady = (): Worker => new Worker("for (;;);", { eval: true });

/** One encode of silence on ENCODER, sent at once. */
export function encode(slot: WorkerSlot): Promise<Buffer> {
  const out = slot.enqueue(ENCODER.streamId, FrameOp.single, SILENCE);
  slot.flush();
  return out;
}

/**
 * A worker factory that keeps each worker it starts, and a promise of that worker's exit.
 * `gate` is the slot's, for a real Opus worker (newOpusWorker).
 */
export function withExits(start: (started: number, gate: NativeGate) => Worker): {
  newWorker: (gate: NativeGate) => Worker;
  workers: Worker[];
  exits: Promise<void>[];
} {
  const workers: Worker[] = [];
  const exits: Promise<void>[] = [];
  const newWorker = (gate: NativeGate): Worker => {
    const worker = start(workers.length, gate);
    workers.push(worker);
    exits.push(new Promise((resolve) => worker.once("exit", () => resolve())));
    return worker;
  };
  return { newWorker, workers, exits };
}

/** The slot's clock and timers (replacements and stall checks) on a clock the test moves. */
export function manualClock(timers: ManualTimers): Pick<WorkerSlotOptions, "now" | "schedule"> {
  return {
    now: timers.now,
    schedule: (fn, ms) => {
      const t = timers.start(ms, fn);
      return () => t.cancel();
    },
  };
}
