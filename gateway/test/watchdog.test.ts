/**
 * The event-loop watchdog (ops/watchdog.ts) in a real child process: a stalled main
 * thread gets the process killed (PM2 then restarts it, and the broker fires its will);
 * a healthy one is left alone, also when the wall clock steps.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";

const WATCHDOG = new URL("../src/ops/watchdog.ts", import.meta.url).href;

function child(body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = performance.now();
  const p = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { startWatchdog } from ${JSON.stringify(WATCHDOG)};\n${body}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return new Promise((resolve) =>
    p.once("exit", (code, signal) => resolve({ code, signal, ms: performance.now() - started })),
  );
}

describe("event-loop watchdog", () => {
  it("kills a process whose main loop stalls longer than the limit", async () => {
    // Stalls for 20 s; the watchdog (500 ms) must end it long before.
    const r = await child(
      "startWatchdog(500); setTimeout(() => { const end = Date.now() + 20000; while (Date.now() < end); }, 300);",
    );
    assert.equal(r.signal, "SIGKILL");
    assert.ok(r.ms < 10_000, `killed after ${r.ms.toFixed(0)} ms`);
  });

  it("leaves a healthy process alone", async () => {
    const r = await child("const w = startWatchdog(500); setTimeout(() => w.stop(), 1500);");
    assert.equal(r.signal, null);
    assert.equal(r.code, 0);
  });

  it("leaves a healthy process alone when the wall clock steps", async () => {
    // The main thread's wall clock an hour behind the watchdog thread's: what a step between
    // a mark and a check looks like. Measured on the wall clock, that is an hour's stall.
    const r = await child(
      "const real = Date.now; Date.now = () => real() - 3_600_000; const w = startWatchdog(500); setTimeout(() => w.stop(), 1500);",
    );
    assert.equal(r.signal, null);
    assert.equal(r.code, 0);
  });
});
