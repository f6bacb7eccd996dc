/**
 * Runs an ES module's source in a child Node (with tsx, so it may import .ts files), for a
 * test whose failure could abort the process itself (a native fatal error): in a child, an
 * abort shows as its exit signal instead of ending the test run.
 */
import { spawn } from "node:child_process";
import { endOf } from "./child-exit.ts";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `source` and resolves with how the child exited. A child still running after
 * `timeoutMs` is killed, and this rejects: a child that hangs must not hold the test run.
 */
export async function runModuleInChild(source: string, timeoutMs = 30_000): Promise<ChildExit> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = endOf(child);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), timeoutMs);
  });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === "late") {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`child still running after ${timeoutMs} ms, killed; stderr: ${stderr.slice(-2000)}`);
  }
  return { ...outcome, stdout, stderr };
}
