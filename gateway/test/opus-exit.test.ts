/**
 * The process exiting while its Opus workers code (ops/exit.ts): Node's exit terminates
 * them wherever they are, and one terminated inside libopus aborts the process. Each case
 * runs in a child Node (support/child-module.ts), where an abort shows as its signal.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GATE } from "../src/audio/opus-native-gate.ts";
import { type ChildExit, runModuleInChild } from "./support/child-module.ts";

/**
 * Children run per case. Without the gates closed at exit, a child exiting as below aborted
 * (SIGABRT, "FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw") 14 times of 15 on
 * process.exit and 12 of 15 on an uncaught exception; with them, 0 of 15 each.
 */
const RUNS = 4;

const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);

/**
 * A child with a real pool of two workers that encode without pause (complexity 10, batches
 * of 50 frames, two in flight per stream), exited by `exit` once a worker is seen inside
 * libopus. The gates are closed at exit as main.ts has them closed.
 */
function codingChild(exit: string): string {
  return `import { writeSync } from "node:fs";
import { OpusPool } from ${url("../src/audio/opus-pool.ts")};
import { newOpusWorker } from ${url("../src/audio/opus-worker-thread.ts")};
import { closeOpusGatesAtExit } from ${url("../src/ops/exit.ts")};
import { createLogger } from ${url("../src/ops/log.ts")};
const gates = [];
const newWorker = (gate) => { gates.push(gate); return newOpusWorker(gate); };
const pool = await OpusPool.start({ size: 2, complexity: 10, bitrate: 24000, slot: { newWorker } });
closeOpusGatesAtExit(pool, createLogger("info", 1));
const pcm = Buffer.alloc(1920);
for (let i = 0; i < pcm.length; i += 2) pcm.writeInt16LE(Math.round(8000 * Math.sin(i / 7)), i);
let coded = 0;
async function pump(stream) {
  for (;;) {
    const outs = [];
    for (let f = 0; f < 200; f++) outs.push(pool.encode(stream, Buffer.from(pcm)));
    for (const r of await Promise.allSettled(outs)) if (r.status === "fulfilled") coded++;
  }
}
for (let i = 0; i < 4; i++) {
  const stream = pool.openEncoder(48000);
  void pump(stream);
  void pump(stream);
}
while (coded < 200) await new Promise((resolve) => setImmediate(resolve));
// Exits in the turn that sees a worker inside a call; the workers get their next batches
// only between turns.
while (!gates.some((g) => Atomics.load(g, 0) === ${GATE.INSIDE})) await new Promise((resolve) => setImmediate(resolve));
writeSync(2, "exiting inside libopus\\n");
${exit}`;
}

/**
 * A child whose one worker is stuck inside a call into libopus for good, exiting with 1. Its
 * libuv thread pool is kept busy as it exits (a pbkdf2 on each of its 4 threads), as a
 * loaded gateway's may be: a line written through the pool (pino's default destination
 * writes so) would wait there, and the kill would lose it. A CI run lost it so.
 */
function stuckChild(): string {
  return `import { pbkdf2 } from "node:crypto";
import { OpusPool } from ${url("../src/audio/opus-pool.ts")};
import { closeOpusGatesAtExit } from ${url("../src/ops/exit.ts")};
import { createLogger } from ${url("../src/ops/log.ts")};
import { stuckInLibopus } from ${url("./support/opus-workers.ts")};
const release = new Int32Array(new SharedArrayBuffer(4));
const gates = [];
const newWorker = (gate) => { gates.push(gate); return stuckInLibopus(gate, release); };
const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000, slot: { newWorker, stallMs: 0 } });
closeOpusGatesAtExit(pool, createLogger("info", 1), 100);
void pool.encode(pool.openEncoder(24000), Buffer.alloc(960)).catch(() => {});
const entered = Atomics.waitAsync(gates[0], 0, ${GATE.OUTSIDE});
if (entered.async) await entered.value;
for (let i = 0; i < 4; i++) pbkdf2("p", "s", 5_000_000, 32, "sha256", () => {});
process.exit(1);`;
}

async function runsOf(source: string): Promise<ChildExit[]> {
  const exits: ChildExit[] = [];
  for (let i = 0; i < RUNS; i++) exits.push(await runModuleInChild(source));
  return exits;
}

/** Each child exited with status 1, by no signal, and its workers were coding as it did. */
function assertExitedWithOne(exits: readonly ChildExit[]): void {
  for (const [i, { code, signal, stderr }] of exits.entries()) {
    assert.match(stderr, /exiting inside libopus/, `run ${i}: ${stderr}`);
    assert.doesNotMatch(stderr, /FATAL ERROR/, `run ${i}`);
    assert.deepEqual({ code, signal }, { code: 1, signal: null }, `run ${i}: ${stderr}`);
  }
}

describe("the process exiting while its Opus workers code", { timeout: 60_000 }, () => {
  it("exits with process.exit's code, without aborting", async () => {
    assertExitedWithOne(await runsOf(codingChild("process.exit(1);")));
  });

  it("exits with status 1 on an uncaught exception, without aborting", async () => {
    assertExitedWithOne(await runsOf(codingChild(`throw new Error("uncaught on purpose");`)));
  });

  it("kills itself after the wait, and says so, when a worker is stuck inside libopus", async () => {
    // A thread stuck in native code would hang the exit (Node joins each worker thread, and
    // it never returns). This stand-in waits in Atomics.wait, which an exit interrupts, so
    // only the kill is seen here.
    const { code, signal, stdout, stderr } = await runModuleInChild(stuckChild());
    assert.deepEqual({ code, signal }, { code: null, signal: "SIGKILL" }, stderr);
    assert.doesNotMatch(stderr, /FATAL ERROR/);
    const line = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
    assert.match(String(line.msg), /opus workers still inside libopus at exit; killing the process/);
    assert.deepEqual([line.workersInside, line.waitedMs, line.exitCode], [1, 100, 1]);
  });
});
