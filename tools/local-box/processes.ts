/**
 * The processes a local box started, found and stopped by what they carry rather than by
 * pids it kept: the box puts `LOCAL_BOX_RUN_DIR=<its run folder>` in its environment
 * before it starts anything, and every process it starts inherits it (the broker, a PM2
 * CLI, the PM2 daemon that CLI spawns, the apps that daemon spawns, their children). A
 * process's initial environment (/proc/<pid>/environ) cannot be changed by the process, and
 * a pid reused by an unrelated process does not carry the mark; the PM2 daemon, which
 * detaches from the box (own session, parent: init), is found all the same.
 *
 * Linux only: without /proc (macOS) nothing is found, and the box behaves as it did before
 * the mark: its teardown does not wait for its processes to be gone, and what a box killed
 * with SIGKILL left must be stopped by hand (`npm stop` still kills its PM2 daemon).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** The environment variable that marks a process as started by the box of a run folder. */
export const RUN_DIR_MARK = "LOCAL_BOX_RUN_DIR";

export interface MarkedProcess {
  readonly pid: number;
  /** Its process group: a PM2 app leads one of its own (PM2 spawns it detached). */
  readonly pgrp: number;
  /** Its command line, for messages. */
  readonly command: string;
  /** Clock ticks from boot to its start: with the pid, which process it is. */
  readonly startTime: number;
}

interface ProcStat {
  readonly state: string;
  readonly pgrp: number;
  /** Clock ticks from boot to its start: with the pid, which process it is. */
  readonly startTime: number;
}

/** /proc/<pid>/stat's state, process group and start time; undefined once the pid is gone. */
function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", pgrp: Number(fields[2]), startTime: Number(fields[19]) };
}

/**
 * Whether `pid` is a process that still runs: a zombie (exited, its status not yet
 * collected by its parent, init for the daemonized PM2) holds no port, memory or CPU.
 */
export function running(pid: number): boolean {
  const stat = procStat(pid);
  return runs(stat);
}

/** A process with this stat runs: not gone, and not a zombie or dead. */
function runs(stat: ProcStat | undefined): stat is ProcStat {
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

/** When `pid` started (clock ticks from boot); undefined if it is gone. */
export function startTime(pid: number): number | undefined {
  return procStat(pid)?.startTime;
}

/** `pid`'s initial environment, one "NAME=value" each; none once it is gone or unreadable. */
export function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
  } catch {
    return [];
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

/** Whether processes' environments can be read here (/proc: Linux; not macOS). */
export function environsReadable(): boolean {
  return existsSync("/proc/self/environ");
}

/**
 * Every running process started by the box of `runDir` (it carries the mark), this one
 * excepted. A process the caller may not read (another user's) is not ours.
 */
export function markedProcesses(runDir: string): MarkedProcess[] {
  const mark = `${RUN_DIR_MARK}=${runDir}`;
  const found: MarkedProcess[] = [];
  if (!environsReadable()) return found;
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (!environ(pid).includes(mark)) continue;
    const stat = procStat(pid);
    if (!runs(stat)) continue;
    found.push({ pid, pgrp: stat.pgrp, command: commandLine(pid), startTime: stat.startTime });
  }
  return found;
}

export interface StopOptions {
  /** How long they get to end by themselves (or after `signal`) before SIGKILL. */
  readonly graceMs: number;
  /** Sent to each first; none: they were already asked to stop (`pm2 kill`). */
  readonly signal?: NodeJS.Signals;
  /** How long SIGKILL gets to take effect; default 2000 ms. */
  readonly killWaitMs?: number;
  /** Between two looks at /proc; default 25 ms. */
  readonly pollMs?: number;
  /** Told of each process about to get its first SIGKILL. */
  readonly onKill?: (p: MarkedProcess) => void;
}

/**
 * Until every process marked for `runDir` is gone: those left after `graceMs` are
 * SIGKILLed, with the process group each leads (a PM2 app's children). Looks again each
 * time, so a process started meanwhile by one of them is stopped too. Resolves with what
 * still runs after the SIGKILL's wait (nothing, unless the kernel holds a process in an
 * uninterruptible sleep, or it is another user's).
 */
export async function stopMarked(runDir: string, options: StopOptions): Promise<MarkedProcess[]> {
  const pollMs = options.pollMs ?? 25;
  const signal = (target: number, sig: NodeJS.Signals) => {
    try {
      process.kill(target, sig);
    } catch {
      // gone meanwhile, or a group that has no member left
    }
  };
  if (options.signal) for (const p of markedProcesses(runDir)) signal(p.pid, options.signal);
  const graceEnd = Date.now() + options.graceMs;
  let left = markedProcesses(runDir);
  // A process on its way out has lost its environment (its memory is gone first), so the
  // mark alone would take it for gone while the kernel still ends it: one seen marked is
  // waited for until it is a zombie or gone. A box that exited on the mark alone left a
  // SIGKILLed gateway still exiting (its command line empty), and a test saw it.
  const lookAgain = () => {
    const now = markedProcesses(runDir);
    const exiting = left.filter((p) => {
      if (now.some((q) => q.pid === p.pid)) return false;
      const stat = procStat(p.pid);
      return runs(stat) && stat.startTime === p.startTime;
    });
    return [...now, ...exiting];
  };
  while (left.length > 0 && Date.now() < graceEnd) {
    await new Promise((r) => setTimeout(r, pollMs));
    left = lookAgain();
  }
  for (const p of left) options.onKill?.(p);
  const killEnd = Date.now() + (options.killWaitMs ?? 2000);
  while (left.length > 0 && Date.now() < killEnd) {
    for (const p of left) {
      if (p.pgrp === p.pid) signal(-p.pid, "SIGKILL");
      signal(p.pid, "SIGKILL");
    }
    await new Promise((r) => setTimeout(r, pollMs));
    left = lookAgain();
  }
  return left;
}
