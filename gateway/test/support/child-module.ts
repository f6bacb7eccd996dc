/**
 * Runs an ES module's source in a child Node (with tsx, so it may import .ts files), for a
 * test whose failure could abort the process itself (a native fatal error): in a child, an
 * abort shows as its exit signal instead of ending the test run.
 */
import { spawn } from "node:child_process";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runModuleInChild(source: string): Promise<ChildExit> {
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
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once("exit", (c, sig) => resolve([c, sig])),
  );
  return { code, signal, stdout, stderr };
}
