/**
 * Structured JSON logs (pino), and a limiter so that a flood of bad input cannot flood the
 * log: each key logs at most `perWindow` lines per window, then one line saying how many
 * were suppressed. The drop counters (metrics.ts) still count every event.
 */
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(level: string, instanceId: number, destination?: NodeJS.WritableStream): Logger {
  const options = { ...loggerOptions(level), base: { instance: instanceId, pid: process.pid } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * A logger writing as `log` does (its level, its fields, to standard output), but each line
 * synchronously: for the line a process writes just before it kills itself. pino's default
 * destination writes asynchronously, through libuv's thread pool; a kill right after such a
 * write loses the line whenever the pool is busy (a test keeps it busy and lost it every
 * time). Lines `log` has queued but not begun to write go out first; one already in the pool
 * cannot be had back.
 */
export function synchronousLogger(log: Logger): Logger {
  const destination = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[
    pino.symbols.streamSym
  ];
  try {
    destination?.flushSync?.();
  } catch {
    // Not open yet, or closed: nothing of it can be written now.
  }
  // bindings() leaves out the pid (pino's own rule); it is this process's.
  const options = { ...loggerOptions(log.level), base: { pid: process.pid } };
  return pino(options, pino.destination({ dest: 1, sync: true })).child(log.bindings());
}

function loggerOptions(level: string) {
  return {
    level,
    // Secrets never reach a log line even if a caller passes them by mistake.
    redact: {
      paths: [
        "mqttPassword",
        "password",
        "apiSecret",
        "key",
        "*.key",
        "*.password",
        "*.apiSecret",
        "udp.key",
      ],
      censor: "[redacted]",
    },
  };
}

export class LogLimiter {
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(perWindow = 5, windowMs = 60_000) {
    this.#perWindow = perWindow;
    this.#windowMs = windowMs;
  }

  /**
   * Calls `emit` if the key is under its budget. When a window with suppressed lines
   * closes, the next allowed call passes how many were suppressed.
   */
  run(key: string, emit: (suppressed: number) => void, now = Date.now()): void {
    let w = this.#windows.get(key);
    let suppressed = 0;
    if (!w || now - w.start >= this.#windowMs) {
      if (w && w.count > this.#perWindow) suppressed = w.count - this.#perWindow;
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
      // Bounded: keys are reasons, not addresses, but never let the map grow unchecked.
      if (this.#windows.size > 1000) this.#windows.clear();
    }
    w.count++;
    if (w.count <= this.#perWindow) emit(suppressed);
  }
}
