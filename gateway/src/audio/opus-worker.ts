/**
 * An Opus worker thread. Holds the codec state of every stream pinned to it: Opus is
 * stateful, so a stream's frames must always reach the same encoder or decoder.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CodecTable } from "./opus-codecs.ts";
import { enterNative, leaveNative, type NativeGate } from "./opus-native-gate.ts";
import { type FromWorker, packFrames, type ToWorker } from "./opus-protocol.ts";

const port = parentPort;
if (!port) throw new Error("opus-worker must run as a worker thread");

// Every call into @discordjs/opus passes the slot's gate, so that the slot terminates this
// thread only between calls (opus-native-gate.ts: terminated inside one, the process aborts).
const gate = (workerData as { gate: NativeGate }).gate;
const codecs = new CodecTable();
const EMPTY = Buffer.alloc(0);

port.on("message", (msg: ToWorker) => {
  switch (msg.kind) {
    case "open":
      // A closed gate: the thread is being terminated, and nothing it does now is read.
      if (!enterNative(gate)) return;
      try {
        codecs.open(msg);
      } finally {
        leaveNative(gate);
      }
      return;
    case "close":
      codecs.close(msg.streamId);
      return;
    case "stop":
      // Nothing is left to keep the thread alive: it ends once this handler returns.
      port.close();
      return;
    case "batch": {
      const started = process.hrtime.bigint();
      const n = msg.streamIds.length;
      const outputs: Buffer[] = [];
      const errors: Record<number, string> = {};
      for (let i = 0; i < n; i++) {
        const begin = msg.offsets[i] as number;
        const frame = Buffer.from(msg.data, begin, (msg.offsets[i + 1] as number) - begin);
        let out: Buffer = EMPTY;
        // Closed: being terminated; the slot has failed this batch already, or will at the exit.
        if (!enterNative(gate)) return;
        try {
          out = codecs.run(msg.streamIds[i] as number, msg.ops[i] as number, frame);
        } catch (err) {
          errors[i] = (err as Error).message || "codec error";
        } finally {
          leaveNative(gate);
        }
        outputs.push(out);
      }
      const { data, offsets } = packFrames(outputs);
      const busyNs = Number(process.hrtime.bigint() - started);
      const reply: FromWorker = { kind: "results", batchId: msg.batchId, offsets, data, errors, busyNs };
      port.postMessage(reply, [data, offsets.buffer]);
      return;
    }
  }
});

port.postMessage({ kind: "ready" } satisfies FromWorker);
