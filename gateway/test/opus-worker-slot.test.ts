import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { FrameOp, type OpenStream } from "../src/audio/opus-protocol.ts";
import {
  newOpusWorker,
  RESTART_DELAY_MS,
  WORKER_READY_MS,
  WORKER_STALL_MS,
  WorkerSlot,
  type WorkerSlotOptions,
} from "../src/audio/opus-worker-slot.ts";
import { ManualTimers } from "./support/manual-timers.ts";

/** A real worker thread that fails as one that cannot load libopus would: before it is ready. */
const unloadable = () => new Worker("throw new Error('cannot load libopus')", { eval: true });

const ENCODER: OpenStream = {
  kind: "open",
  streamId: 1,
  role: "encoder",
  sampleRate: 24000,
  complexity: 5,
  bitrate: 24000,
};
const SILENCE = Buffer.alloc(1440 * 2);
const NO_READY_DEADLINE = { readyMs: 0 } as const;

/**
 * The slot's delayed replacements, run when the test says (no waiting in real time). It holds
 * one timer: the slots that use it alone have no ready deadline (NO_READY_DEADLINE); that
 * deadline is tested with ManualTimers below.
 */
class ManualRestarts {
  readonly delays: number[] = [];
  /** Replacements the slot called off. */
  cancelled = 0;
  #due: (() => void) | undefined;
  #scheduled: (() => void) | undefined;

  readonly schedule = (fn: () => void, ms: number): (() => void) => {
    this.delays.push(ms);
    this.#due = fn;
    this.#scheduled?.();
    return () => {
      this.#due = undefined;
      this.cancelled++;
    };
  };

  /** Resolves when the slot next schedules a replacement. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.#scheduled = resolve;
    });
  }

  /** The delay has passed: the slot starts its replacement. */
  runDue(): void {
    const fn = this.#due;
    this.#due = undefined;
    assert.ok(fn, "a replacement is scheduled");
    fn();
  }
}

/**
 * A slot whose first worker failed to load: its start reported through `ready`, as
 * OpusPool.start awaits it, and its first replacement scheduled.
 */
async function failedSlot(
  restarts: ManualRestarts,
  newWorker: () => Worker = unloadable,
): Promise<WorkerSlot> {
  const scheduled = restarts.next();
  const slot = new WorkerSlot({ newWorker, schedule: restarts.schedule, ...NO_READY_DEADLINE });
  await assert.rejects(slot.ready, /cannot load libopus/);
  await scheduled;
  return slot;
}

/** The slot's next replacement runs and fails to load again; resolves once it is rescheduled. */
async function failAgain(restarts: ManualRestarts): Promise<void> {
  const scheduled = restarts.next();
  restarts.runDue();
  await scheduled;
}

function encode(slot: WorkerSlot): Promise<Buffer> {
  const out = slot.enqueue(ENCODER.streamId, FrameOp.single, SILENCE);
  slot.flush();
  return out;
}

// Bounded: a slot that replaced its worker at once, or never, would leave a test waiting for
// a replacement that is never scheduled.
describe("an Opus worker slot whose worker cannot load", { timeout: 10_000 }, () => {
  it("reports the first worker's failure through `ready`, as OpusPool.start awaits it; stop calls off the replacement", async () => {
    const restarts = new ManualRestarts();
    const slot = await failedSlot(restarts);
    await slot.stop();
    assert.equal(restarts.cancelled, 1);
    assert.equal(slot.alive, false);
  });

  it("waits longer before each new worker, failing frames at once meanwhile, until one loads", async () => {
    let loads = false;
    const restarts = new ManualRestarts();
    const slot = await failedSlot(restarts, () => (loads ? newOpusWorker() : unloadable()));
    slot.open(ENCODER);
    await assert.rejects(encode(slot), /opus worker restarting/);
    await failAgain(restarts);
    await failAgain(restarts);
    const first = RESTART_DELAY_MS.first;
    assert.deepEqual(restarts.delays, [first, 2 * first, 4 * first]);
    assert.equal(slot.stats().restarts, 3);

    loads = true;
    restarts.runDue();
    await slot.ready;
    assert.equal(slot.alive, true);
    assert.ok((await encode(slot)).length > 0, "the stream opened while waiting codes on the new worker");
    await slot.stop();
  });

  it("replaces a worker that had loaded at once, without a delay", async () => {
    const restarts = new ManualRestarts();
    const slot = new WorkerSlot({ schedule: restarts.schedule, ...NO_READY_DEADLINE });
    await slot.ready;
    slot.open(ENCODER);
    await slot.terminateForTest();
    assert.deepEqual(restarts.delays, []);
    await slot.ready;
    assert.ok((await encode(slot)).length > 0);
    await slot.stop();
  });

  it("never waits more than the longest delay", async () => {
    const restarts = new ManualRestarts();
    const slot = await failedSlot(restarts);
    while ((restarts.delays.at(-1) ?? 0) < RESTART_DELAY_MS.max) await failAgain(restarts);
    await failAgain(restarts);
    assert.deepEqual(restarts.delays.slice(-2), [RESTART_DELAY_MS.max, RESTART_DELAY_MS.max]);
    await slot.stop();
  });
});

describe("OpusPool.start when one of its workers cannot load", { timeout: 10_000 }, () => {
  it("fails, and leaves no worker running and no replacement pending", async () => {
    const restarts = new ManualRestarts();
    // The first worker loads libopus; the second cannot.
    const { newWorker, exits } = withExits((started) => (started === 0 ? newOpusWorker() : unloadable()));
    await assert.rejects(
      OpusPool.start({
        size: 2,
        complexity: 5,
        bitrate: 24000,
        slot: { newWorker, schedule: restarts.schedule },
      }),
      /cannot load libopus/,
    );
    // Bounded by the describe: a worker left running never exits.
    await Promise.all(exits);
    assert.equal(exits.length, 2, "no worker was started after the failure");
    assert.equal(restarts.cancelled, restarts.delays.length, "every scheduled replacement was called off");
  });

  it("fails when a worker exits before it is ready without an error", async () => {
    const restarts = new ManualRestarts();
    const { newWorker, exits } = withExits(() => new Worker("process.exit(3)", { eval: true }));
    await assert.rejects(
      OpusPool.start({
        size: 1,
        complexity: 5,
        bitrate: 24000,
        slot: { newWorker, schedule: restarts.schedule },
      }),
      /opus worker exited \(code 3\) before it was ready/,
    );
    await Promise.all(exits);
    assert.equal(restarts.cancelled, restarts.delays.length, "every scheduled replacement was called off");
  });
});

/** A worker factory that keeps each worker it starts, and a promise of that worker's exit. */
function withExits(start: (started: number) => Worker): {
  newWorker: () => Worker;
  workers: Worker[];
  exits: Promise<void>[];
} {
  const workers: Worker[] = [];
  const exits: Promise<void>[] = [];
  const newWorker = (): Worker => {
    const worker = start(workers.length);
    workers.push(worker);
    exits.push(new Promise((resolve) => worker.once("exit", () => resolve())));
    return worker;
  };
  return { newWorker, workers, exits };
}

/** The slot's clock and timers (replacements and stall checks) on a clock the test moves. */
function manualClock(timers: ManualTimers): Pick<WorkerSlotOptions, "now" | "schedule"> {
  return {
    now: timers.now,
    schedule: (fn, ms) => {
      const t = timers.start(ms, fn);
      return () => t.cancel();
    },
  };
}

/** A worker that loads, then loops for good on its first batch, as one stuck in libopus would. */
const hanging = () =>
  new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (m) => { if (m.kind === "batch") for (;;); });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true },
  );

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

describe("an Opus worker slot whose worker stops answering", { timeout: 10_000 }, () => {
  it("takes a worker silent for WORKER_STALL_MS as hung: its frames fail, it is ended, a new one codes its streams", async () => {
    const timers = new ManualTimers();
    const { newWorker, workers } = withExits((started) => (started === 0 ? hanging() : newOpusWorker()));
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

/** A real worker thread stuck while it loads (a loop, a read that never returns): it never says ready. */
const neverReady = () => new Worker("for (;;);", { eval: true });

/** A worker that loads, then ends on the first stream it is asked to open (as a poison stream would). */
const diesOnOpen = () =>
  new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (m) => { if (m.kind === "open") process.exit(1); });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true },
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

describe("an Opus worker slot whose new worker never says it is ready", { timeout: 10_000 }, () => {
  it("takes a replacement not ready after WORKER_READY_MS as hung: its frames fail, it is ended, the next starts after a delay", async () => {
    const timers = new ManualTimers();
    let loads = false;
    const { newWorker, workers, exits } = withExits((started) =>
      started === 0 ? hanging() : loads ? newOpusWorker() : neverReady(),
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

describe("an Opus worker slot whose new workers die before they answer anything", { timeout: 10_000 }, () => {
  it("replaces the first at once, then waits longer before each, until one works", async () => {
    const timers = new ManualTimers();
    let healthy = false;
    const { newWorker, workers, exits } = withExits(() => (healthy ? newOpusWorker() : diesOnOpen()));
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      await exits[0];
      assert.equal(workers.length, 2, "a worker that had loaded is replaced at once");
      await exits[1];
      assert.equal(workers.length, 2, "its replacement, dead on the same stream, is not (no crash loop)");
      for (const delay of [2, 4].map((n) => n * RESTART_DELAY_MS.first)) {
        timers.advance(delay - 1);
        assert.equal(workers.length, exits.length, `not before ${delay} ms`);
        timers.advance(1);
        await exits[exits.length - 1];
      }
      assert.equal(slot.stats().restarts, 4);
      assert.equal(slot.alive, false);

      healthy = true;
      timers.advance(RESTART_DELAY_MS.max);
      await slot.ready;
      assert.ok((await encode(slot)).length > 0);
      // It answered: it works, and its death is replaced at once again.
      const before = workers.length;
      await slot.terminateForTest();
      assert.equal(workers.length, before + 1);
      await slot.ready;
      assert.ok((await encode(slot)).length > 0);
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });
});
