/**
 * Child processes that must not outlive the tool or test that started them (the broker, the
 * LiveKit server, a gateway and, through it, its media process, the bench's load agent).
 *
 * Why it is needed: a child is not told when its parent dies, and Node's default action on
 * SIGTERM and SIGINT ends the process without running its `exit` handlers or any `finally`.
 * A bench stopped with `kill` used to leave its gateway, media process, broker and LiveKit
 * server running (holding ports and CPU that the next run then measured). Every guarded
 * child is SIGKILLed from this process's `exit` event, which runs on `process.exit()` and on
 * a normal end; `exitOnSignals()` turns SIGINT and SIGTERM into `process.exit()` for a
 * command-line tool. A gateway's media process goes with its gateway (PR_SET_PDEATHSIG).
 */
import type { ChildProcess } from "node:child_process";

const guarded = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of guarded) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** SIGKILLs `child` when this process exits, unless it has exited first. */
export function killOnExit(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  guarded.add(child);
  child.once("exit", () => guarded.delete(child));
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
}

/**
 * For a command-line tool: SIGINT and SIGTERM end it through `process.exit` (exit status
 * 130 and 143, as a shell reports them), so the guarded children are killed with it.
 * `cleanup`, when given, runs first (a graceful stop: devices closed, gateways drained);
 * a second signal while it runs exits at once, still killing the guarded children.
 */
export function exitOnSignals(cleanup?: () => Promise<void>): void {
  let stopping = false;
  const stop = (status: number): void => {
    if (stopping || !cleanup) process.exit(status);
    stopping = true;
    cleanup().then(
      () => process.exit(status),
      () => process.exit(status),
    );
  };
  process.on("SIGINT", () => stop(130));
  process.on("SIGTERM", () => stop(143));
}
