/**
 * The gateway's exit with its Opus workers running (main.ts): `process.exit` (a drain that
 * timed out or failed, after a drain), an uncaught exception, or an empty event loop.
 *
 * Node's exit terminates every worker thread wherever it is, and a worker terminated inside
 * a call into @discordjs/opus aborts the whole process (opus-native-gate.ts): SIGABRT,
 * status 134 and maybe a core file, in place of the exit code that was meant. A process
 * exiting while its workers coded aborted every time (docs/reliability.md, rule 10). So
 * the process's `exit` event first closes every worker's gate. A worker stuck inside
 * libopus for good would keep its gate open for good, and the exit could not end it
 * either: Node joins each worker thread as it exits, so the process would hang there until
 * the call returned, and then abort. After `maxMs` the process kills itself instead
 * (SIGKILL, as the watchdog does: no abort, no core, and PM2 restarts it), and says so.
 */
import { type Logger, synchronousLogger } from "./log.ts";

/**
 * How long an exit waits for the Opus workers to come out of libopus, ms, all together. A
 * call takes well under a millisecond (~0.7 ms for an encode at complexity 10,
 * docs/performance.md), so one still inside after this is stuck there.
 */
export const EXIT_GATE_WAIT_MS = 200;

/** What the exit needs of the Opus pool (OpusPool). */
export interface ExitingPool {
  /** Closes every worker's gate, `maxMs` at most; returns the workers still inside libopus. */
  closeGatesForExit(maxMs: number): number;
}

/** From now on, the process's exit, whatever causes it, first takes `pool`'s workers out of libopus. */
export function closeOpusGatesAtExit(pool: ExitingPool, log: Logger, maxMs = EXIT_GATE_WAIT_MS): void {
  process.once("exit", (code) => {
    const inside = pool.closeGatesForExit(maxMs);
    if (inside === 0) return;
    // Written synchronously: the kill right after would lose a line still in the thread pool.
    synchronousLogger(log).fatal(
      { workersInside: inside, waitedMs: maxMs, exitCode: code },
      "opus workers still inside libopus at exit; killing the process (SIGKILL) instead of aborting",
    );
    process.kill(process.pid, "SIGKILL");
  });
}
