/**
 * Who owns a run folder, and what a box that died without its teardown left there. A box
 * ended by SIGKILL (`kill -9`, the OOM killer, `script` whose terminal closed: SIGTERM, then
 * SIGKILL 2 s later) runs no handler: its PM2 daemon with the gateways and the verifier, and
 * its broker (which holds the broker port), keep running, and its pid file stays. `npm
 * start` and `npm stop` call `stopLeftovers` when no live box owns the folder: they stop
 * everything carrying the folder's mark (processes.ts), say what, and go on.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { pm2Kill } from "../pm2.ts";
import { type MarkedProcess, markedProcesses, startTime, stopMarked } from "./processes.ts";
import type { RunPaths } from "./run-paths.ts";

/**
 * Writes this process's pid file: its pid, then its start time, so that a pid the kernel
 * gave to another process since (after a reboot, say) is not taken for the box.
 */
export function writePidFile(run: RunPaths): void {
  writeFileSync(run.pidFile, `${process.pid}\n${startTime(process.pid) ?? ""}\n`);
}

export interface PidFileOwner {
  readonly pid: number;
  /** Whether that box still runs: the same pid with the same start time. */
  readonly alive: boolean;
}

/** The box named by the run folder's pid file; undefined when there is none. */
export function pidFileOwner(run: RunPaths): PidFileOwner | undefined {
  let text: string;
  try {
    text = readFileSync(run.pidFile, "utf8");
  } catch {
    return undefined;
  }
  const [pidText = "", startText = ""] = text.split("\n");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return { pid: 0, alive: false };
  const started = startTime(pid);
  // A pid file without a start time (written before it kept one) trusts the pid alone.
  const alive = started !== undefined && (startText === "" || Number(startText) === started);
  return { pid, alive };
}

/** How long what a dead box left gets after `pm2 kill` and SIGTERM before SIGKILL. */
const LEFTOVER_GRACE_MS = 5000;

function describe(processes: readonly MarkedProcess[]): string {
  return processes.map((p) => `${p.pid} ${p.command.slice(0, 100)}`).join("\n  ");
}

/**
 * Stops what a box of this run folder left running when it died (no live box may own the
 * folder: the caller checked), and removes its pid file; `npm start` and `npm stop` call it
 * first, and it is the one place either kills the folder's PM2 daemon. That daemon is asked
 * first (`pm2 kill`: it stops its apps, and does not restart one killed under it), with the
 * mark or without (one started by a box from before the mark, processes.ts; any, where /proc
 * is absent and nothing is found marked); then everything still marked gets SIGTERM, and
 * SIGKILL after a grace. Resolves with the lines to print, none if nothing was left; rejects
 * if something survived SIGKILL.
 */
export async function stopLeftovers(run: RunPaths, owner: PidFileOwner | undefined): Promise<string[]> {
  const left = markedProcesses(run.dir);
  rmSync(run.pidFile, { force: true });
  const lines =
    left.length === 0
      ? []
      : [
          `a local box of ${run.dir} ended without stopping (${owner ? `pid ${owner.pid}, killed?` : "no pid file"}); stopping what it left:\n  ${describe(left)}`,
        ];
  // One that does not answer is SIGKILLed below with the rest, if it carries the mark.
  const noAnswer = await pm2Kill({ home: run.pm2Home });
  if (noAnswer !== undefined) lines.push(noAnswer);
  if (left.length === 0) return lines;
  const survivors = await stopMarked(run.dir, { signal: "SIGTERM", graceMs: LEFTOVER_GRACE_MS });
  if (survivors.length > 0)
    throw new Error(
      `still running after SIGKILL (left by a local box of ${run.dir}):\n  ${describe(survivors)}`,
    );
  lines.push(`stopped ${left.length} process${left.length === 1 ? "" : "es"} left by that box`);
  return lines;
}
