/** Opus worker slots whose worker hangs: after it loaded (a stall), or while it loads. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { RESTART_DELAY_MS, WORKER_READY_MS, WORKER_STALL_MS } from "../src/audio/opus-worker-bounds.ts";
import { WorkerSlot } from "../src/audio/opus-worker-slot.ts";
import { newOpusWorker } from "../src/audio/opus-worker-thread.ts";
import { ManualTimers } from "./support/manual-timers.ts";
import { ENCODER, encode, hanging, manualClock, neverReady, withExits } from "./support/opus-workers.ts";

/**
 * A worker that answers each batch (empty outputs) only once `go` is set, then sets
 * `answered`: the test decides when the answer is sent, and knows when it has been.
 */
const answeringOnCue = (signals: SharedArrayBuffer) =>
  new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const [go, answered] = [new Int32Array(workerData, 0, 1), new Int32Array(workerData, 4, 1)];
     parentPort.on("message", (m) => {
       if (m.kind === "stop") parentPort.close();
       if (m.kind !== "batch") return;
       Atomics.wait(go, 0, 0);
       const offsets = new Uint32Array(m.streamIds.length + 1);
       parentPort.postMessage({ kind: "results", batchId: m.batchId, offsets, data: new ArrayBuffer(0), errors: {}, busyNs: 0 });
       Atomics.store(answered, 0, 1);
       Atomics.notify(answered, 0);
     });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true, workerData: signals },
  );

/**
 * What `owed` has come to once the event loop has been through its next check phase, where
 * the slot takes its verdicts: the error's message, "answered", or "waiting".
 */
function outcomeSoon(owed: Promise<unknown>): Promise<string> {
  const waiting = new Promise<string>((resolve) => setImmediate(() => resolve("waiting")));
  return Promise.race([
    owed.then(
      () => "answered",
      (err: Error) => err.message,
    ),
    waiting,
  ]);
}

describe("an Opus worker slot whose worker stops answering", { timeout: 10_000 }, () => {
  it("takes a worker silent for WORKER_STALL_MS as hung: its frames fail, it is ended, a new one codes its streams", async () => {
    const timers = new ManualTimers();
    const { newWorker, workers } = withExits((started, gate) =>
      started === 0 ? hanging() : newOpusWorker(gate),
    );
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      const owed = encode(slot);
      const hungExit = once(workers[0] as Worker, "exit");
      timers.advance(WORKER_STALL_MS);
      await assert.rejects(owed, /opus worker stalled/);
      await hungExit;
      assert.deepEqual(
        { restarts: slot.stats().restarts, stalls: slot.stats().stalls, workers: workers.length },
        { restarts: 1, stalls: 1, workers: 2 },
      );
      await slot.ready;
      assert.equal(slot.alive, true);
      assert.ok((await encode(slot)).length > 0, "the stream is open on the new worker");
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });

  it("does not take a stall of the main thread for one of the worker: an answer read late counts", async () => {
    const timers = new ManualTimers();
    const signals = new SharedArrayBuffer(8);
    const [go, answered] = [new Int32Array(signals, 0, 1), new Int32Array(signals, 4, 1)];
    const { newWorker, workers } = withExits(() => answeringOnCue(signals));
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      const owed = encode(slot);
      // In a timer, where the slot's own check runs: the main thread blocks until the worker
      // has answered, and the check then finds the batch older than the bound, its answer unread.
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          Atomics.store(go, 0, 1);
          Atomics.notify(go, 0);
          Atomics.wait(answered, 0, 0, 5000);
          timers.advance(WORKER_STALL_MS);
          resolve();
        }, 0),
      );
      await owed;
      assert.equal(slot.stats().stalls, 0);
      assert.equal(slot.alive, true);
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });
});

describe("an Opus worker slot whose new worker never says it is ready", { timeout: 10_000 }, () => {
  it("takes a replacement not ready after WORKER_READY_MS as hung: its frames fail, it is ended, the next starts after a delay", async () => {
    const timers = new ManualTimers();
    let loads = false;
    const { newWorker, workers, exits } = withExits((started, gate) =>
      started === 0 ? hanging() : loads ? newOpusWorker(gate) : neverReady(),
    );
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      const first = encode(slot);
      timers.advance(WORKER_STALL_MS);
      await assert.rejects(first, /opus worker stalled/);
      assert.equal(workers.length, 2, "the hung worker was replaced at once");

      // Its replacement never loads: frames sent to it wait for it, for a while only.
      const owed = encode(slot);
      timers.advance(WORKER_READY_MS);
      assert.match(await outcomeSoon(owed), /opus worker not ready after/);
      await exits[1];
      assert.deepEqual(
        { restarts: slot.stats().restarts, stalls: slot.stats().stalls, owed: slot.stats().inFlightFrames },
        { restarts: 2, stalls: 2, owed: 0 },
      );
      assert.equal(slot.alive, false, "/readyz reports the pool not alive meanwhile");
      await assert.rejects(encode(slot), /opus worker restarting/, "frames fail at once while it waits");

      // Not started again at once (one that never loads would be retried in a loop).
      timers.advance(RESTART_DELAY_MS.first - 1);
      assert.equal(workers.length, 2);
      loads = true;
      timers.advance(RESTART_DELAY_MS.max);
      assert.equal(workers.length, 3);
      await slot.ready;
      assert.ok((await encode(slot)).length > 0, "the stream is open on the worker that loaded");
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });

  it("fails OpusPool.start after WORKER_READY_MS, leaving no worker running", async () => {
    const timers = new ManualTimers();
    const { newWorker, workers, exits } = withExits(() => neverReady());
    const starting = OpusPool.start({
      size: 1,
      complexity: 5,
      bitrate: 24000,
      slot: { newWorker, ...manualClock(timers) },
    });
    try {
      timers.advance(WORKER_READY_MS);
      assert.match(await outcomeSoon(starting), /opus worker not ready after/);
      await Promise.all(exits);
      assert.equal(workers.length, 1, "no worker was started after the failure");
    } finally {
      for (const w of workers) await w.terminate();
    }
  });
});
