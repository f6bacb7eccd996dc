import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { FrameOp, type OpenStream } from "../src/audio/opus-protocol.ts";
import { newOpusWorker, RESTART_DELAY_MS, WorkerSlot } from "../src/audio/opus-worker-slot.ts";

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

/** The slot's delayed replacements, run when the test says (no waiting in real time). */
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
  const slot = new WorkerSlot({ newWorker, schedule: restarts.schedule });
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
    const slot = new WorkerSlot({ schedule: restarts.schedule });
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
    const exits: Promise<void>[] = [];
    const newWorker = (): Worker => {
      // The first worker loads libopus; the second cannot.
      const worker = exits.length === 0 ? newOpusWorker() : unloadable();
      exits.push(new Promise((resolve) => worker.once("exit", () => resolve())));
      return worker;
    };
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
});
