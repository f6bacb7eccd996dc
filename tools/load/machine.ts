/**
 * The `machine:` line every benchmark prints. The CPU's model name alone does not tell
 * machines apart here: this VM kind reports a bare "AMD EPYC" for different parts (the
 * same code took half the CPU in bench:rooms on one "AMD EPYC" as on another, days apart),
 * so the line carries the x86 family and model from /proc/cpuinfo too.
 */
import { readFileSync } from "node:fs";
import os from "node:os";

/** "family 26, model 2" from /proc/cpuinfo's first processor; undefined where absent. */
export function cpuGeneration(cpuinfo: string): string | undefined {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(\\S+)\\s*$`, "m").exec(cpuinfo)?.[1];
  const family = field("cpu family");
  const model = field("model");
  return family !== undefined && model !== undefined ? `family ${family}, model ${model}` : undefined;
}

function readCpuinfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}

/** e.g. "AMD EPYC (family 26, model 2) x 2, 24 GiB, Node v20.20.2". */
export function describeMachine(): string {
  const cpus = os.cpus();
  const generation = cpuGeneration(readCpuinfo());
  const name = `${cpus[0]?.model ?? "?"}${generation ? ` (${generation})` : ""}`;
  return `${name} x ${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}
