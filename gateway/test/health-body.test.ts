/**
 * The body of `GET /health` (ops/health-body.ts) without a server: its figures from
 * injected inputs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LAG_PERIOD_TICKS, LagPeriods } from "../src/ops/health-body.ts";

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
