/**
 * The periodic totals line of a gateway instance and its session alert: every interval,
 * the Opus workers' utilisation is sampled, the totals are logged, and the alert gauge
 * (and an ERROR line) is raised while the sessions are above the threshold.
 */
import type { Logger } from "./log.ts";
import type { GatewayMetrics } from "./metrics.ts";

export interface TotalsOptions {
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly intervalMs: number;
  readonly alertThreshold: number;
  sessionCount(): number;
  /** Called first each interval (the pool's utilisation sample). */
  sample(): void;
}

/** The counters of the totals line. */
export function totalsFields(o: {
  readonly metrics: GatewayMetrics;
  readonly sessions: number;
}): Record<string, unknown> {
  return {
    sessions: o.sessions,
    framesUp: o.metrics.framesUpTotal,
    framesDown: o.metrics.framesDownTotal,
    drops: o.metrics.drops(),
    opusWorkerRestarts: o.metrics.opusWorkerRestarts(),
  };
}

/** Returns the stop. */
export function startTotals(o: TotalsOptions): () => void {
  const timer = setInterval(() => {
    o.sample();
    const n = o.sessionCount();
    const over = n > o.alertThreshold;
    o.metrics.sessionAlert.set(over ? 1 : 0);
    o.log.info({ totals: totalsFields({ metrics: o.metrics, sessions: n }) }, "totals");
    if (over) o.log.error({ sessions: n, threshold: o.alertThreshold }, "ALERT: sessions above threshold");
  }, o.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
