/**
 * What a lost Opus worker leaves for the on-call engineer (docs/runbook.md section 7): one
 * log line per loss, rate-limited for a worker that keeps dying, and the counts by reason
 * in /metrics and in the totals line. Real worker threads; the slot's timers on a manual clock.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { parseMetrics } from "../../tools/load/metrics-scrape.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { RESTART_DELAY_MS, WORKER_READY_MS, WORKER_STALL_MS } from "../src/audio/opus-worker-bounds.ts";
import { WORKER_LOSS_REASONS, WORKER_LOST, WorkerLossLog } from "../src/audio/opus-worker-loss.ts";
import { WorkerSlot } from "../src/audio/opus-worker-slot.ts";
import { newOpusWorker } from "../src/audio/opus-worker-thread.ts";
import { GatewayMetrics } from "../src/ops/metrics.ts";
import { totalsFields } from "../src/ops/totals.ts";
import { ManualTimers } from "./support/manual-timers.ts";
import {
  diesOnOpen,
  ENCODER,
  encode,
  hanging,
  manualClock,
  neverReady,
  withExits,
} from "./support/opus-workers.ts";
import { RecordingLog } from "./support/recording-log.ts";

/** A worker that loads, then throws on its first batch (an exception in our code or a binding's). */
const throwsOnBatch = () =>
  new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (m) => { if (m.kind === "batch") throw new RangeError("frame size out of range"); });
     parentPort.postMessage({ kind: "ready" });`,
    { eval: true },
  );

describe("an Opus worker lost: its log line", { timeout: 10_000 }, () => {
  it("a worker that threw: logged once, with its error, the slot, its streams and an immediate replacement", async () => {
    const timers = new ManualTimers();
    const log = new RecordingLog();
    const { newWorker, workers, exits } = withExits((started, gate) =>
      started === 0 ? throwsOnBatch() : newOpusWorker(gate),
    );
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers), lossLog: new WorkerLossLog(log, 2) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      await assert.rejects(encode(slot), /frame size out of range/);
      await exits[0];
      await slot.ready;
      assert.ok((await encode(slot)).length > 0, "the replacement codes the stream");
      assert.equal(log.lines.length, 1, "one line for one loss (not one for its error and one for its exit)");
      const [line] = log.withMessage(WORKER_LOST);
      assert.ok(line, `logged as "${WORKER_LOST}"`);
      const { cause, ...rest } = line.fields;
      assert.deepEqual(rest, { slot: 2, reason: "exited", streams: 1, restart: "at once" });
      // The error, and the stack's first frame: where it was thrown (line 2 of the worker's code).
      assert.match(
        String(cause),
        /^threw: RangeError: frame size out of range \(at .*\[worker eval\]:2:\d+\)?\)$/,
      );
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });

  it("a worker that hung, and its replacement that never loaded: how long each was waited for, and when the next starts", async () => {
    const timers = new ManualTimers();
    const log = new RecordingLog();
    const { newWorker, workers, exits } = withExits((started) => (started === 0 ? hanging() : neverReady()));
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers), lossLog: new WorkerLossLog(log, 0) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      const owed = encode(slot);
      timers.advance(WORKER_STALL_MS);
      await assert.rejects(owed, /opus worker stalled/);
      timers.advance(WORKER_READY_MS);
      await exits[1];
      assert.deepEqual(
        log.withMessage(WORKER_LOST).map((l) => l.fields),
        [
          {
            slot: 0,
            reason: "hung",
            cause: `hung: owed a batch and silent ${WORKER_STALL_MS} ms`,
            streams: 1,
            restart: "at once",
          },
          {
            slot: 0,
            reason: "not_ready",
            cause: `not ready after ${WORKER_READY_MS} ms`,
            streams: 1,
            // The second worker in a row that did not work: twice the first delay.
            restart: `after ${2 * RESTART_DELAY_MS.first} ms backoff`,
          },
        ],
      );
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });

  it("a worker that keeps dying: 5 lines a minute, then one that says how many were held back", async () => {
    const timers = new ManualTimers();
    const log = new RecordingLog();
    const { newWorker, workers, exits } = withExits(() => diesOnOpen());
    // No ready deadline: the minute below is skipped in one step, and a worker still loading
    // in real time would be taken as not ready.
    const slot = new WorkerSlot({
      newWorker,
      ...manualClock(timers),
      readyMs: 0,
      lossLog: new WorkerLossLog(log, 1),
    });
    try {
      await slot.ready;
      slot.open(ENCODER);
      // 8 deaths in ~16 s of the manual clock: replaced at once, then after 200 ms doubling to 5 s.
      for (let deaths = 1; deaths <= 8; deaths++) {
        await exits[deaths - 1];
        if (deaths < 8) timers.advance(RESTART_DELAY_MS.max);
      }
      const lost = log.withMessage(WORKER_LOST);
      assert.equal(lost.length, 5, "5 of 8 losses in the minute are logged");
      assert.deepEqual(
        lost.map((l) => [l.fields.cause, l.fields.restart]),
        [
          ["exited with code 1", "at once"],
          ["exited with code 1", "after 200 ms backoff"],
          ["exited with code 1", "after 400 ms backoff"],
          ["exited with code 1", "after 800 ms backoff"],
          ["exited with code 1", "after 1600 ms backoff"],
        ],
      );
      assert.equal(slot.stats().restarts, 8, "every loss is still counted");

      // A minute on, the next loss is logged with the count of those held back.
      timers.advance(60_000);
      await exits[8];
      const next = log.withMessage(WORKER_LOST);
      assert.equal(next.length, 6);
      assert.equal(next.at(-1)?.fields.suppressedBefore, 3);
    } finally {
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });
});

describe("an Opus worker lost: the counts by reason", { timeout: 10_000 }, () => {
  it("the pool logs each loss with its slot; /metrics and the totals line carry the counts by reason", async () => {
    const timers = new ManualTimers();
    const log = new RecordingLog();
    // Slot 0's workers: one that hangs, one that never loads, then a real one.
    const { newWorker, workers } = withExits((started, gate) =>
      started === 0 ? hanging() : started === 2 ? neverReady() : newOpusWorker(gate),
    );
    const metrics = new GatewayMetrics(1);
    const pool = await OpusPool.start({
      size: 2,
      complexity: 5,
      bitrate: 24000,
      log,
      slot: { newWorker, ...manualClock(timers) },
    });
    try {
      metrics.watchOpusWorkers(() => pool.workerLosses());
      const zero = parseMetrics(await metrics.registry.metrics());
      assert.deepEqual(
        Object.fromEntries(zero.byLabel("gateway_opus_worker_restarts_total", "reason")),
        { exited: 0, hung: 0, not_ready: 0 },
        "every reason is there from the start, at 0",
      );

      const stream = pool.openEncoder(24000);
      assert.equal(stream.worker, 0);
      const owed = pool.encode(stream, Buffer.alloc(1440 * 2));
      // Flushed at the end of this turn: the clock moves once the batch is owed.
      await new Promise<void>((resolve) => setImmediate(resolve));
      timers.advance(WORKER_STALL_MS);
      await assert.rejects(owed, /opus worker stalled/);
      timers.advance(WORKER_READY_MS);
      await new Promise<void>((resolve) => setImmediate(resolve));
      timers.advance(RESTART_DELAY_MS.max);
      await pool.killWorkerForTest(1);

      const counts = Object.fromEntries(
        parseMetrics(await metrics.registry.metrics()).byLabel(
          "gateway_opus_worker_restarts_total",
          "reason",
        ),
      );
      assert.deepEqual(counts, { exited: 1, hung: 1, not_ready: 1 });
      assert.deepEqual(pool.workerLosses(), { exited: 1, hung: 1, not_ready: 1 });
      assert.deepEqual(totalsFields({ metrics, sessions: 0 }).opusWorkerRestarts, {
        exited: 1,
        hung: 1,
        not_ready: 1,
      });
      assert.deepEqual(
        log.withMessage(WORKER_LOST).map((l) => [l.fields.slot, l.fields.reason]),
        [
          [0, "hung"],
          [0, "not_ready"],
          [1, "exited"],
        ],
      );
    } finally {
      await pool.shutdown();
      metrics.stop();
      for (const w of workers) await w.terminate();
    }
  });
});

describe("an Opus worker lost: what the runbook tells the on-call engineer", () => {
  it("names the log line, the metric and its reasons that the gateway has", async () => {
    const runbook = readFileSync(new URL("../../docs/runbook.md", import.meta.url), "utf8");
    const watch = runbook.slice(
      runbook.indexOf("## 7. Watch"),
      runbook.indexOf("\n## ", runbook.indexOf("## 7. Watch") + 1),
    );
    assert.ok(watch.includes(`"${WORKER_LOST}"`), `section 7 names the line "${WORKER_LOST}"`);
    const metric = "gateway_opus_worker_restarts_total";
    assert.ok(
      watch.includes(`${metric}{reason="${WORKER_LOSS_REASONS.join("|")}"}`),
      `section 7 names ${metric}`,
    );
    const metrics = new GatewayMetrics(1);
    const text = await metrics.registry.metrics();
    metrics.stop();
    for (const reason of WORKER_LOSS_REASONS)
      assert.ok(text.includes(`${metric}{reason="${reason}"`), reason);
  });
});
