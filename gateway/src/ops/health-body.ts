/**
 * What `GET /health` answers, and the periodic work behind it: a 1 s sampler of frames per
 * second, of the latency quantiles and of the event-loop lag. `HealthBody` is the one description of the body:
 * the tools that read it (soak, load test, local box) import it instead of guessing.
 */
import type { IntervalHistogram } from "node:perf_hooks";
import type { WorkerStats } from "../audio/opus-pool.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { WindowedSummary } from "./windowed-summary.ts";

export interface LatencyQuantiles {
  readonly p50: number;
  readonly p99: number;
}

/** The JSON of `GET /health`, per instance. */
export interface HealthBody {
  /**
   * Broker connected with its subscriptions in place, every Opus worker alive, not draining
   * (what /readyz answers).
   */
  readonly ready: boolean;
  readonly instanceId: number;
  readonly bootId: string;
  readonly uptimeSeconds: number;
  readonly draining: boolean;
  readonly brokerConnected: boolean;
  /**
   * The subscriptions of the current broker connection are granted. False while connected
   * means a subscribe refused after a reconnect, retried until it holds (mqtt.ts): the
   * instance hears nothing on those filters meanwhile.
   */
  readonly brokerSubscribed: boolean;
  readonly udpPort: number;
  readonly sessions: number;
  readonly sessionsByState: Record<string, number>;
  /** Peer instances by instance id, as their presence says. */
  readonly peers: Record<string, { readonly bootId: string; readonly state: string }>;
  readonly workers: readonly WorkerStats[];
  /** Codec streams (decoders and encoders) the main thread runs itself (OPUS_INLINE_STREAMS). */
  readonly inlineCodecStreams: number;
  /**
   * Share of the main thread's wall time spent coding those streams, 0..1, over the last
   * totals interval (as each worker's `utilization`).
   */
  readonly inlineCodecUtilization: number;
  readonly framesPerSecond: { readonly up: number; readonly down: number };
  /**
   * Time inside the gateway, last 60 s: datagram in -> PCM to the agent, and agent PCM
   * frame -> datagram out (the latter includes the tts-start lead of first frames).
   * Empty until the sampler's first second.
   */
  readonly gatewayLatencyMs: { readonly upstream?: LatencyQuantiles; readonly downstream?: LatencyQuantiles };
  readonly drops: Record<string, number>;
  readonly closes: Record<string, number>;
  readonly memory: {
    readonly rssBytes: number;
    readonly heapUsedBytes: number;
    readonly heapTotalBytes: number;
  };
  /**
   * p99 of the main event loop's delay over the last complete LAG_PERIOD_TICKS-second period
   * (until the first has ended, since the start): a recent figure, as the latencies are,
   * where it used to be cumulative since the start.
   */
  readonly eventLoopLagP99Ms: number;
}

/** What the body is made of, read at each request. */
export interface HealthInputs {
  readonly instanceId: number;
  readonly bootId: string;
  readonly startedAt: number;
  readonly udpPort: number;
  readonly metrics: GatewayMetrics;
  readonly rates: RateFigures;
  brokerConnected(): boolean;
  brokerSubscribed(): boolean;
  draining(): boolean;
  workersAlive(): boolean;
  workers(): readonly WorkerStats[];
  inlineCodecStreams(): number;
  inlineCodecUtilization(): number;
  sessionStates(): Iterable<string>;
  sessionCount(): number;
  peers(): ReadonlyMap<number, { readonly bootId: string; readonly state: string }>;
  now?: () => number;
}

export function healthSnapshot(i: HealthInputs): { ready: boolean; body: Omit<HealthBody, "ready"> } {
  const mem = process.memoryUsage();
  const byState: Record<string, number> = {};
  for (const s of i.sessionStates()) byState[s] = (byState[s] ?? 0) + 1;
  const brokerConnected = i.brokerConnected();
  const brokerSubscribed = i.brokerSubscribed();
  const draining = i.draining();
  return {
    ready: brokerConnected && brokerSubscribed && !draining && i.workersAlive(),
    body: {
      instanceId: i.instanceId,
      bootId: i.bootId,
      uptimeSeconds: Math.round(((i.now ?? Date.now)() - i.startedAt) / 1000),
      draining,
      brokerConnected,
      brokerSubscribed,
      udpPort: i.udpPort,
      sessions: i.sessionCount(),
      sessionsByState: byState,
      peers: Object.fromEntries(i.peers()),
      workers: i.workers(),
      inlineCodecStreams: i.inlineCodecStreams(),
      inlineCodecUtilization: i.inlineCodecUtilization(),
      framesPerSecond: i.rates.framesPerSecond,
      gatewayLatencyMs: i.rates.latency,
      drops: i.metrics.drops(),
      closes: i.metrics.closes(),
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal },
      eventLoopLagP99Ms: i.rates.eventLoopLagP99Ms,
    },
  };
}

/** What the sampler keeps for the body. */
export interface RateFigures {
  readonly framesPerSecond: HealthBody["framesPerSecond"];
  readonly latency: HealthBody["gatewayLatencyMs"];
  readonly eventLoopLagP99Ms: number;
}

/** Sampler ticks (seconds) in one period of the event-loop lag figure. */
export const LAG_PERIOD_TICKS = 10;

/**
 * The event-loop lag p99 of the last complete period. Node's delay histogram cannot be
 * windowed or merged (an ELD histogram cannot be added to another), so it is read and
 * reset at the end of each period; no timer of its own.
 */
export class LagPeriods {
  readonly #histogram: Pick<IntervalHistogram, "percentile" | "reset">;
  readonly #periodTicks: number;
  #ticks = 0;
  #last: number | undefined;

  constructor(histogram: Pick<IntervalHistogram, "percentile" | "reset">, periodTicks = LAG_PERIOD_TICKS) {
    this.#histogram = histogram;
    this.#periodTicks = periodTicks;
  }

  /** One sampler tick; the period ends every `periodTicks`. */
  tick(): void {
    if (++this.#ticks < this.#periodTicks) return;
    this.#ticks = 0;
    this.#last = this.#histogram.percentile(99) / 1e6;
    this.#histogram.reset();
  }

  /** ms; before the first period has ended, what the histogram holds so far. */
  get p99Ms(): number {
    return this.#last ?? this.#histogram.percentile(99) / 1e6;
  }
}

/**
 * Frames per second over the last second, the latency quantiles read once a second, and
 * the event-loop lag of the last complete period (LagPeriods).
 */
export class RateSampler implements RateFigures {
  framesPerSecond = { up: 0, down: 0 };
  latency: HealthBody["gatewayLatencyMs"] = {};
  readonly #lag: LagPeriods;
  readonly #timer: NodeJS.Timeout;

  constructor(metrics: GatewayMetrics, intervalMs = 1000) {
    let lastUp = 0;
    let lastDown = 0;
    this.#lag = new LagPeriods(metrics.eventLoopDelay);
    this.#timer = setInterval(() => {
      this.#lag.tick();
      this.latency = {
        upstream: quantiles(metrics.upstreamLatency),
        downstream: quantiles(metrics.downstreamLatency),
      };
      this.framesPerSecond = { up: metrics.framesUpTotal - lastUp, down: metrics.framesDownTotal - lastDown };
      lastUp = metrics.framesUpTotal;
      lastDown = metrics.framesDownTotal;
    }, intervalMs);
    this.#timer.unref();
  }

  get eventLoopLagP99Ms(): number {
    return this.#lag.p99Ms;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** In ms; 0 while the window is empty, as /metrics shows it (see `WindowedSummary.quantile`). */
function quantiles(summary: WindowedSummary): LatencyQuantiles {
  return { p50: 1000 * summary.quantile(0.5), p99: 1000 * summary.quantile(0.99) };
}
