/**
 * The body of `GET /health` (ops/health-body.ts) without a server: its figures from
 * injected inputs.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type HealthInputs, healthSnapshot, LAG_PERIOD_TICKS, LagPeriods } from "../src/ops/health-body.ts";
import { GatewayMetrics } from "../src/ops/metrics.ts";

/** Node's delay histogram as LagPeriods reads it: a p99 the test sets, in ns. */
class FakeHistogram {
  p99Ns = 0;
  resets = 0;
  percentile(): number {
    return this.p99Ns;
  }
  reset(): void {
    this.resets++;
    this.p99Ns = 0;
  }
}

describe("the health body's event-loop lag", () => {
  it("is the p99 of the last complete period, not of everything since the start", () => {
    const h = new FakeHistogram();
    const lag = new LagPeriods(h);
    h.p99Ns = 40e6;
    assert.equal(lag.p99Ms, 40, "before the first period has ended: what the histogram holds");
    for (let i = 0; i < LAG_PERIOD_TICKS; i++) lag.tick();
    assert.deepEqual({ p99Ms: lag.p99Ms, resets: h.resets }, { p99Ms: 40, resets: 1 });
    h.p99Ns = 2e6;
    for (let i = 0; i < LAG_PERIOD_TICKS - 1; i++) lag.tick();
    assert.equal(lag.p99Ms, 40, "the period under way does not count yet");
    lag.tick();
    assert.deepEqual({ p99Ms: lag.p99Ms, resets: h.resets }, { p99Ms: 2, resets: 2 });
  });
});

describe("the health body's readiness", () => {
  const metrics = new GatewayMetrics(1);
  after(() => metrics.stop());

  /** A serving instance, but for what `o` says. */
  const inputs = (o: { subscribed: boolean }): HealthInputs => ({
    instanceId: 1,
    bootId: "boot",
    startedAt: 0,
    udpPort: 1,
    metrics,
    rates: { framesPerSecond: { up: 0, down: 0 }, latency: {}, eventLoopLagP99Ms: 0 },
    brokerConnected: () => true,
    brokerSubscribed: () => o.subscribed,
    draining: () => false,
    workersAlive: () => true,
    workers: () => [],
    inlineCodecStreams: () => 0,
    inlineCodecUtilization: () => 0,
    sessionStates: () => [],
    sessionCount: () => 0,
    peers: () => new Map(),
    now: () => 0,
  });

  it("is not ready while the broker is connected but refuses its subscriptions", () => {
    const refused = healthSnapshot(inputs({ subscribed: false }));
    assert.deepEqual(
      {
        ready: refused.ready,
        connected: refused.body.brokerConnected,
        subscribed: refused.body.brokerSubscribed,
      },
      { ready: false, connected: true, subscribed: false },
    );
    assert.equal(healthSnapshot(inputs({ subscribed: true })).ready, true, "ready once they hold");
  });
});
