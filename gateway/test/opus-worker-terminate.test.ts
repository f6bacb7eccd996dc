/**
 * Ending an Opus worker while it is inside libopus (opus-native-gate.ts): terminated there,
 * @discordjs/opus aborts the whole process, so the slot terminates a worker only between
 * its calls, and leaves one stuck inside a call running until it comes out.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GATE, type NativeGate } from "../src/audio/opus-native-gate.ts";
import { WORKER_STALL_MS } from "../src/audio/opus-worker-bounds.ts";
import { WorkerSlot } from "../src/audio/opus-worker-slot.ts";
import { newOpusWorker } from "../src/audio/opus-worker-thread.ts";
import { runModuleInChild } from "./support/child-module.ts";
import { ManualTimers } from "./support/manual-timers.ts";
import { ENCODER, encode, manualClock, stuckInLibopus, withExits } from "./support/opus-workers.ts";

/** Workers terminated by the child below, each while it was inside libopus. */
const TERMINATIONS = 5;

/**
 * The child: a slot whose worker encodes without pause, terminated TERMINATIONS times, each
 * time once it is seen inside libopus (most of its time: it is never idle). Each
 * replacement has answered before it is terminated, so the slot replaces it at once.
 */
function childBody(): string {
  const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
  return `import { WorkerSlot } from ${url("../src/audio/opus-worker-slot.ts")};
import { newOpusWorker } from ${url("../src/audio/opus-worker-thread.ts")};
import { FrameOp } from ${url("../src/audio/opus-protocol.ts")};
const turn = () => new Promise((resolve) => setImmediate(resolve));
const gates = [];
const slot = new WorkerSlot({ stallMs: 0, readyMs: 0, newWorker: (gate) => { gates.push(gate); return newOpusWorker(gate); } });
slot.open(${JSON.stringify(ENCODER)});
const pcm = Buffer.alloc(2880);
for (let i = 0; i < pcm.length; i += 2) pcm.writeInt16LE(Math.round(8000 * Math.sin(i / 7)), i);
let coding = true;
let coded = 0;
async function pump() {
  while (coding) {
    const outs = [];
    for (let f = 0; f < 20; f++) outs.push(slot.enqueue(${ENCODER.streamId}, FrameOp.single, Buffer.from(pcm)));
    slot.flush();
    for (const r of await Promise.allSettled(outs)) if (r.status === "fulfilled") coded++;
    await turn();
  }
}
const pumps = [pump(), pump()];
let inside = 0;
for (let i = 0; i < ${TERMINATIONS}; i++) {
  await slot.ready;
  const before = coded;
  while (coded === before) await turn();
  const gate = gates.at(-1);
  while (Atomics.load(gate, 0) !== ${GATE.INSIDE}) await turn();
  inside++;
  await slot.terminateForTest();
}
coding = false;
await Promise.all(pumps);
await slot.stop();
console.log(JSON.stringify({ inside, restarts: slot.stats().restarts }));`;
}

describe("terminating an Opus worker while it codes", { timeout: 30_000 }, () => {
  it("never aborts the process, however often it is caught inside libopus", async () => {
    // Before the gate, the first termination of a worker coding like this aborted the
    // process ("FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw"), 3 runs of 3.
    // In a child, so an abort shows as its signal.
    const { code, signal, stdout, stderr } = await runModuleInChild(childBody());
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { inside: TERMINATIONS, restarts: TERMINATIONS });
  });
});

describe("an Opus worker stuck inside libopus", { timeout: 10_000 }, () => {
  it("is replaced as hung but not terminated until it comes out, and then at once", async () => {
    const timers = new ManualTimers();
    const release = new Int32Array(new SharedArrayBuffer(4));
    const gates: NativeGate[] = [];
    const { newWorker, workers, exits } = withExits((started, gate) => {
      gates.push(gate);
      return started === 0 ? stuckInLibopus(gate, release) : newOpusWorker(gate);
    });
    const slot = new WorkerSlot({ newWorker, ...manualClock(timers) });
    try {
      await slot.ready;
      slot.open(ENCODER);
      const owed = encode(slot);
      const gate = gates[0] as NativeGate;
      // Until the worker is inside: a wait that returns at once if it is already.
      const entered = Atomics.waitAsync(gate, 0, GATE.OUTSIDE);
      if (entered.async) await entered.value;

      timers.advance(WORKER_STALL_MS);
      await assert.rejects(owed, /opus worker stalled/);
      assert.equal(
        Atomics.load(gate, 0),
        GATE.AWAITED,
        "the slot waits for it to come out; it did not terminate it",
      );
      assert.equal(slot.stats().retiring, 1);
      await slot.ready;
      assert.ok((await encode(slot)).length > 0, "its replacement codes the stream meanwhile");

      Atomics.store(release, 0, 1);
      Atomics.notify(release, 0);
      await exits[0];
      assert.equal(Atomics.load(gate, 0), GATE.CLOSED, "closed before it was terminated");
      // The count drops once the termination's promise has settled, after the exit event.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(slot.stats().retiring, 0);
    } finally {
      Atomics.store(release, 0, 1);
      Atomics.notify(release, 0);
      await slot.stop();
      for (const w of workers) await w.terminate();
    }
  });
});
