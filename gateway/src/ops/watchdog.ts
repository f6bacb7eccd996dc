/**
 * Two views of the main event loop, for a process that stalls or is stopped:
 *
 * - `LoopClock` (main thread): when the loop last turned. A message read right after a
 *   stall may have waited in the socket for the whole stall, so its arrival time is only
 *   known to be after the last turn; the gateway orders claims and drops late hellos by it.
 * - `startWatchdog` (a worker thread): if the main loop has not turned for `stallMs`, or
 *   the whole process was frozen that long (SIGSTOP, a paused VM: the worker's own timer
 *   ran late too), the process kills itself. PM2 restarts it, and the broker publishes its
 *   will at once (the TCP connection closes without DISCONNECT), so the surviving instances
 *   tell its devices goodbye. A hung instance that stayed would keep taking its share of
 *   hellos and answer none of them.
 *
 * Both judge a stall on a monotonic clock: a wall-clock step (NTP, `date -s`) forward by the
 * stall would otherwise kill every instance at once, and one backward would hide a real hang.
 * The watchdog's two threads compare their readings, so both read `process.hrtime`:
 * libuv's monotonic clock, one for the whole process whichever thread reads it.
 */
import { Worker } from "node:worker_threads";

export interface LoopClock {
  /** The earliest time the message being handled can have arrived, epoch ms. */
  arrivedAt(): number;
  stop(): void;
}

/** Milliseconds on the process's monotonic clock, the same in every thread. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * `now`: the wall clock, what arrival times are given in (instances compare them: claims).
 * `mono`: the clock a stall is measured on.
 */
export function startLoopClock(
  beatMs = 100,
  stalledAfterMs = 1000,
  now = Date.now,
  mono = monotonicMs,
): LoopClock {
  let last = now();
  let lastMono = mono();
  const timer = setInterval(() => {
    last = now();
    lastMono = mono();
  }, beatMs);
  timer.unref();
  return {
    arrivedAt() {
      return mono() - lastMono > stalledAfterMs ? last : now();
    },
    stop: () => clearInterval(timer),
  };
}

export interface Watchdog {
  stop(): Promise<void>;
}

// Runs in the worker: plain JavaScript, no imports from the bundle.
const WATCHDOG_SOURCE = `
const { workerData } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const beat = new Float64Array(workerData.beat);
const { stallMs, checkMs } = workerData;
// The clock the main thread marks its turns on (monotonicMs): shared by both threads.
const mono = () => Number(process.hrtime.bigint()) / 1e6;
let lastCheck = mono();
setInterval(() => {
  const now = mono();
  const frozen = now - lastCheck;
  lastCheck = now;
  const stalled = now - beat[0];
  if (stalled > stallMs || frozen > stallMs) {
    writeSync(2, JSON.stringify({ level: 60, time: Date.now(), msg: "watchdog: event loop stalled; exiting so PM2 restarts this instance", stalledMs: stalled, frozenMs: frozen }) + "\\n");
    process.kill(process.pid, "SIGKILL");
  }
}, checkMs);
`;

/** How often the main thread marks that its loop turned, ms. */
export const WATCHDOG_BEAT_MS = 250;
/**
 * The shortest stall the watchdog may be set to, ms. An idle loop's mark is up to one beat
 * old, and the worker looks at it only every check (and its own timer can be late), so a
 * stall of about one beat kills a healthy process, PM2 restarts it, and it kills itself again.
 * Four beats leave room for that and for the ordinary jitter of a busy loop.
 */
export const MIN_WATCHDOG_STALL_MS = 4 * WATCHDOG_BEAT_MS;

/** `stallMs` 0 disables it. */
export function startWatchdog(stallMs: number, beatMs = WATCHDOG_BEAT_MS): Watchdog | undefined {
  if (stallMs <= 0) return undefined;
  const shared = new SharedArrayBuffer(8);
  const beat = new Float64Array(shared);
  beat[0] = monotonicMs();
  const timer = setInterval(() => {
    beat[0] = monotonicMs();
  }, beatMs);
  timer.unref();
  const worker = new Worker(WATCHDOG_SOURCE, {
    eval: true,
    // Plain CommonJS, whatever flags started the process (--input-type=module, loaders).
    execArgv: [],
    workerData: { beat: shared, stallMs, checkMs: Math.min(500, Math.max(50, stallMs / 4)) },
  });
  // A watchdog that fails must not take the gateway down with it.
  worker.on("error", (err) => process.stderr.write(`watchdog failed: ${err.message}\n`));
  worker.unref();
  return {
    async stop() {
      clearInterval(timer);
      await worker.terminate();
    },
  };
}
