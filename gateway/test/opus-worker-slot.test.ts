import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import type { NativeGate } from "../src/audio/opus-native-gate.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { RESTART_DELAY_MS } from "../src/audio/opus-worker-bounds.ts";
import { WorkerSlot } from "../src/audio/opus-worker-slot.ts";
import { newOpusWorker } from "../src/audio/opus-worker-thread.ts";
import { ManualTimers } from "./support/manual-timers.ts";
import { diesOnOpen, ENCODER, encode, manualClock, unloadable, withExits } from "./support/opus-workers.ts";

/** For slots driven by ManualRestarts alone (its one timer); the deadline: opus-worker-hang.test.ts. */
const NO_READY_DEADLINE = { readyMs: 0 } as const;

/**
 * The slot's delayed replacements, run when the test says (no waiting in real time). It holds
 * one timer, so the slots it drives alone have no ready deadline (NO_READY_DEADLINE).
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
  newWorker: (gate: NativeGate) => Worker = unloadable,
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
    const slot = await failedSlot(restarts, (gate) => (loads ? newOpusWorker(gate) : unloadable()));
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
    const { newWorker, exits } = withExits((started, gate) =>
      started === 0 ? newOpusWorker(gate) : unloadable(),
    );
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

describe("an Opus worker slot whose new workers die before they answer anything", { timeout: 10_000 }, () => {
  it("replaces the first at once, then waits longer before each, until one works", async () => {
    const timers = new ManualTimers();
    let healthy = false;
    const { newWorker, workers, exits } = withExits((_started, gate) =>
      healthy ? newOpusWorker(gate) : diesOnOpen(),
    );
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
