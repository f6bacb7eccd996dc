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

/** A tool in miniature: starts the broker, prints its pid, then waits to be stopped. */
const TOOL = `
import { startBroker } from ${JSON.stringify(path.join(SIM, "broker-process.ts"))};
import { exitOnSignals } from ${JSON.stringify(path.join(SIM, "exit-guard.ts"))};
exitOnSignals();
const broker = await startBroker();
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

async function stopToolWith(signal: NodeJS.Signals): Promise<{ code: number | null; brokerPid: number }> {
  ensureBrokerBinary();
  const tool = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", TOOL], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const [line] = (await new Promise<string[]>((resolve, reject) => {
      createInterface({ input: tool.stdout }).once("line", (l) => resolve([l]));
      tool.once("exit", (code) => reject(new Error(`tool exited (${code}) before starting the broker`)));
    })) as [string];
    const brokerPid = Number(line);
    assert.ok(running(brokerPid), "the broker runs while the tool does");
    const exited = new Promise<number | null>((resolve) => tool.once("exit", (code) => resolve(code)));
    tool.kill(signal);
    return { code: await exited, brokerPid };
  } finally {
    tool.kill("SIGKILL");
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
});
