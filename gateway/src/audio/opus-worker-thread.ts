/**
 * How an Opus worker thread (opus-worker.ts) is started, built or from source; the slot
 * (opus-worker-slot.ts) decides when.
 */
import { Worker } from "node:worker_threads";
import type { NativeGate } from "./opus-native-gate.ts";

// Built: dist/gateway/opus-worker.js beside main.js. From source (tests, tsx): the .ts
// file, loaded through tsx's API inside the worker (Node 20 does not apply the main
// thread's `--import tsx` hooks to a worker's entry module).
const FROM_SOURCE = import.meta.url.endsWith(".ts");

/** A new Opus worker thread (opus-worker.ts), passing each call into libopus through `gate`. */
export function newOpusWorker(gate: NativeGate): Worker {
  const workerData = { gate };
  if (!FROM_SOURCE) return new Worker(new URL("./opus-worker.js", import.meta.url), { workerData });
  const entry = new URL("./opus-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}
