/**
 * A Prometheus `summary` backed by `WindowedQuantiles`, registered in a prom-client
 * `Registry` and rendered by it exactly as a prom-client `Summary` without labels would be:
 *
 *   # HELP <name> <help>
 *   # TYPE <name> summary
 *   <name>{quantile="0.5"} v        (one line per percentile)
 *   <name>_sum v
 *   <name>_count v
 *
 * It does only what the gateway's latency summaries need: no labels, no timers.
 */
import type { PrometheusContentType, Registry, RegistryContentType } from "prom-client";
import { WindowedQuantiles, type WindowedQuantilesOptions } from "./windowed-quantiles.ts";

/** One line of the rendered metric, in the shape prom-client's `Registry` reads. */
export interface SummaryValue {
  /** Set for `_sum` and `_count`; the metric's own name otherwise. */
  readonly metricName?: string;
  readonly labels: { readonly quantile?: number };
  readonly value: number;
}

/** What `get()` answers: prom-client's metric object for a summary. */
export interface SummaryMetricObject {
  readonly name: string;
  readonly help: string;
  readonly type: "summary";
  readonly values: SummaryValue[];
  /** prom-client's default for every metric; read only by its cluster aggregation, unused here. */
  readonly aggregator: "sum";
}

/**
 * What a prom-client `Registry` uses of a metric at run time: `name` (registerMetric),
 * `get` (metrics, getMetricsAsJSON), `reset` (resetMetrics). Its typings accept only its
 * own four classes; this overload states that a metric of this shape is accepted too.
 */
export interface RegistrableMetric {
  readonly name: string;
  get(): Promise<SummaryMetricObject>;
  reset(): void;
}

declare module "prom-client" {
  // Same type parameter as the class, or the declarations do not merge.
  interface Registry<BoundRegistryContentType extends RegistryContentType = PrometheusContentType> {
    registerMetric(metric: RegistrableMetric): void;
  }
}

export interface WindowedSummaryConfig extends WindowedQuantilesOptions {
  readonly name: string;
  readonly help: string;
  /** Quantiles to export, ascending (0.5, 0.95, 0.99 in the gateway). */
  readonly percentiles: readonly number[];
  readonly registers: readonly Registry[];
}

export class WindowedSummary implements RegistrableMetric {
  readonly name: string;
  readonly help: string;
  readonly type = "summary";
  readonly #q: WindowedQuantiles;
  readonly #percentiles: readonly number[];
  /** Reused by every read: no allocation but the metric object itself. */
  readonly #scratch: number[] = [];

  constructor(config: WindowedSummaryConfig) {
    this.name = config.name;
    this.help = config.help;
    this.#percentiles = [...config.percentiles].sort((a, b) => a - b);
    this.#q = new WindowedQuantiles(config);
    for (const r of config.registers) r.registerMetric(this);
  }

  /** Counts one value (seconds). Negative or non-finite values count nothing. */
  observe(value: number): void {
    this.#q.observe(value);
  }

  /**
   * The q-quantile of the window as exported: 0 while the window is empty, because
   * prom-client's Summary writes `percentile || 0`, and /metrics and /health have always
   * shown 0 for an idle window.
   */
  quantile(q: number): number {
    return exported(this.#q.quantile(q));
  }

  get sum(): number {
    return this.#q.sum;
  }

  get count(): number {
    return this.#q.count;
  }

  // Async only because the Registry's contract is a promise; nothing here waits.
  async get(): Promise<SummaryMetricObject> {
    const qs = this.#q.quantiles(this.#percentiles, this.#scratch);
    const values: SummaryValue[] = this.#percentiles.map((quantile, i) => ({
      labels: { quantile },
      value: exported(qs[i] ?? Number.NaN),
    }));
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.#q.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.#q.count });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }

  reset(): void {
    this.#q.reset();
  }
}

function exported(v: number): number {
  return Number.isNaN(v) ? 0 : v;
}
