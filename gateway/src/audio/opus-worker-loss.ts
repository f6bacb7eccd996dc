/**
 * What the pool tells the on-call engineer when it loses an Opus worker (opus-worker-slot.ts
 * replaces it): one WARN line per loss, "opus worker lost", saying what happened, on which
 * slot, how many streams it carried and when its replacement starts; and the reasons the
 * losses are counted by (`gateway_opus_worker_restarts_total`, ops/metrics.ts). A worker
 * that keeps dying is replaced up to every 5 s for as long as it fails: its lines are
 * rate-limited per slot as the gateway's other repeated warnings are (LogLimiter), the
 * counts still count every loss.
 */
import { LogLimiter } from "../ops/log.ts";

/** The message of the log line, for docs/runbook.md and for tests. */
export const WORKER_LOST = "opus worker lost";

/**
 * Why a worker was replaced: it exited (ended, or threw an exception that ended it), it hung
 * (owed a batch and answered nothing for the stall bound), or it was not ready in time.
 * `/health`'s `restarts` is the sum of all three, its `stalls` is hung + not_ready.
 */
export const WORKER_LOSS_REASONS = ["exited", "hung", "not_ready"] as const;
export type WorkerLossReason = (typeof WORKER_LOSS_REASONS)[number];

/** What the slot knows of a loss: what happened, in the terms of its reason. */
export type WorkerLossCause =
  | { readonly reason: "exited"; readonly code: number; readonly thrown?: unknown }
  | { readonly reason: "hung"; readonly silentMs: number }
  | { readonly reason: "not_ready"; readonly readyMs: number };

export interface WorkerLoss {
  readonly cause: WorkerLossCause;
  /** Streams pinned to the slot: each hears a glitch, its codec re-opened on the replacement. */
  readonly streams: number;
  /** When the replacement starts, ms from now: 0, at once. */
  readonly restartDelayMs: number;
}

/** The one method used of the gateway's logger (pino); tests pass a recording one. */
export interface WarnLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export function newLossCounts(): Record<WorkerLossReason, number> {
  return { exited: 0, hung: 0, not_ready: 0 };
}

/** The log's words for a cause. */
export function describeCause(cause: WorkerLossCause): string {
  switch (cause.reason) {
    case "exited":
      return cause.thrown === undefined
        ? `exited with code ${cause.code}`
        : `threw: ${describeThrown(cause.thrown)}`;
    case "hung":
      return `hung: owed a batch and silent ${Math.round(cause.silentMs)} ms`;
    case "not_ready":
      return `not ready after ${cause.readyMs} ms`;
  }
}

/**
 * The error and where it was thrown (the stack's first frame), not the whole stack: a line
 * per loss stays one line. A worker's stack holds only code paths, no session data.
 */
function describeThrown(thrown: unknown): string {
  if (!(thrown instanceof Error)) return String(thrown);
  const head = `${thrown.name}: ${thrown.message}`;
  const frame = thrown.stack
    ?.split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith("at "));
  return frame ? `${head} (${frame})` : head;
}

/** The log line of one slot's losses. */
export class WorkerLossLog {
  readonly #log: WarnLogger;
  readonly #slot: number;
  readonly #limiter: LogLimiter;

  /** `limiter` may be shared by the pool's slots: each slot has its own budget in it. */
  constructor(log: WarnLogger, slot: number, limiter: LogLimiter = new LogLimiter()) {
    this.#log = log;
    this.#slot = slot;
    this.#limiter = limiter;
  }

  /** Logs the loss unless this slot is over its budget; `now` is the slot's clock, ms. */
  lost(loss: WorkerLoss, now: number): void {
    this.#limiter.run(
      `opus_worker_lost:${this.#slot}`,
      (suppressed) => {
        const fields: Record<string, unknown> = {
          slot: this.#slot,
          reason: loss.cause.reason,
          cause: describeCause(loss.cause),
          streams: loss.streams,
          restart: loss.restartDelayMs > 0 ? `after ${loss.restartDelayMs} ms backoff` : "at once",
        };
        if (suppressed > 0) fields.suppressedBefore = suppressed;
        this.#log.warn(fields, WORKER_LOST);
      },
      now,
    );
  }
}
