/** Small measurement helpers for the load test: percentiles and process CPU from /proc. */
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds (user + system) a process, or one of its threads (`thread`: its id; a
 * process's main thread has the process's id), has used so far; undefined if it is gone.
 */
export function cpuSeconds(pid: number, thread?: number): number | undefined {
  try {
    const stat = readFileSync(
      thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`,
      "utf8",
    );
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * Times a thread has gone to sleep waiting (voluntary context switches) so far: each is one
 * wakeup later, so the difference over a window is its wakeups. Undefined if it is gone.
 */
export function voluntarySwitches(pid: number, thread: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/task/${thread}/status`, "utf8");
    const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A free TCP port on loopback (for health ports of instances the load test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The child of `pid` whose command name is `comm` (e.g. the gateway's `voice-media`), if any. */
export function childNamed(pid: number, comm: string): number | undefined {
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const kids = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    for (const k of kids) {
      if (readFileSync(`/proc/${k}/comm`, "utf8").trim() === comm) return Number(k);
    }
  }
  return undefined;
}

/** Resident memory of `pid` in MB; 0 for no process. */
export function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}
