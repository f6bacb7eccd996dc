/**
 * A tool stopped by a signal takes the processes it started along (tools/sim/exit-guard.ts):
 * a real tool process starts the real broker, is sent the signal, and the broker must be
 * gone after it. Before the guard, `kill` on bench:rooms left its broker, LiveKit server,
 * gateway and media process running.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { eventually } from "../../gateway/test/support/stack.ts";
import { ensureBrokerBinary } from "../sim/broker-process.ts";

const SIM = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../sim");

/**
 * A tool in miniature: starts the broker, prints its pid, then waits to be stopped. With
 * `graceful`, its cleanup stops the broker itself and says so on stdout.
 */
const tool = (graceful: boolean) => `
import { startBroker } from ${JSON.stringify(path.join(SIM, "broker-process.ts"))};
import { exitOnSignals } from ${JSON.stringify(path.join(SIM, "exit-guard.ts"))};
let broker;
exitOnSignals(${graceful ? 'async () => { await broker.stop(); console.log("cleaned up"); }' : ""});
broker = await startBroker();
console.log(broker.process.pid);
setInterval(() => {}, 1000);
`;

/** Alive and not a zombie (a killed child may wait a moment for its new parent to reap it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

interface Stopped {
  readonly code: number | null;
  readonly brokerPid: number;
  /** What the tool printed after the broker's pid. */
  readonly laterLines: string[];
}

async function stopToolWith(signal: NodeJS.Signals, graceful = false): Promise<Stopped> {
  ensureBrokerBinary();
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", tool(graceful)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const lines: string[] = [];
    // "close", not "exit": it comes after the tool's stdout has been read to its end, so a
    // line printed just before exiting is in `lines` by then.
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    const firstLine = new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on("line", (l) => {
        lines.push(l);
        resolve(l);
      });
      void exited.then((code) => reject(new Error(`tool exited (${code}) before starting the broker`)));
    });
    const brokerPid = Number(await firstLine);
    assert.ok(running(brokerPid), "the broker runs while the tool does");
    child.kill(signal);
    return { code: await exited, brokerPid, laterLines: lines.slice(1) };
  } finally {
    child.kill("SIGKILL");
  }
}

describe("exit guard (tools stopped by a signal)", () => {
  for (const [signal, status] of [
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const) {
    it(`${signal} ends the tool with status ${status} and kills the broker it started`, async () => {
      const { code, brokerPid } = await stopToolWith(signal);
      assert.equal(code, status);
      // SIGKILLed from the tool's exit handler; the kernel may take a moment to finish it.
      await eventually(() => !running(brokerPid), 2000, `broker ${brokerPid} to be gone after the tool`);
    });
  }

  it("a tool with a graceful stop runs it first, then exits 143", async () => {
    const { code, brokerPid, laterLines } = await stopToolWith("SIGTERM", true);
    assert.equal(code, 143);
    assert.deepEqual(laterLines, ["cleaned up"]);
    await eventually(() => !running(brokerPid), 2000, `broker ${brokerPid} to be gone after the tool`);
  });
});
