/**
 * The latency summaries' estimator (`WindowedQuantiles`) and its Prometheus face
 * (`WindowedSummary`): quantiles within the documented 1 % of the exact ones, a sliding
 * 60 s window on an injected clock, cumulative sum and count, and the text a prom-client
 * `Registry` renders for it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Registry, Summary } from "prom-client";
import { GatewayMetrics } from "../src/ops/metrics.ts";
import { WindowedQuantiles } from "../src/ops/windowed-quantiles.ts";
import { WindowedSummary } from "../src/ops/windowed-summary.ts";

/** A clock the test moves. */
function clock(): { now: () => number; set: (ms: number) => void } {
  let t = 0;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
  };
}

/** The k-th smallest value, k = max(1, ⌈q·n⌉): what the estimate is bounded against. */
function exactQuantile(sorted: readonly number[], q: number): number {
  const k = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[k - 1] as number;
}

/** Within the relative error, with room for float rounding at bucket edges. */
function assertWithin(estimate: number, exact: number, alpha: number, what: string): void {
  const err = Math.abs(estimate - exact) / exact;
  assert.ok(err <= alpha * (1 + 1e-9), `${what}: ${estimate} vs ${exact} (error ${err})`);
}

describe("WindowedQuantiles", () => {
  it("answers each quantile within 1 % of the exact one, for any values in 1 µs .. 100 s", () => {
    const logValue = fc.double({ min: Math.log(1e-6), max: Math.log(100), noNaN: true }).map(Math.exp);
    fc.assert(
      fc.property(
        fc.array(logValue, { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (values, q) => {
          const w = new WindowedQuantiles({ now: () => 0 });
          for (const v of values) w.observe(v);
          const sorted = [...values].sort((a, b) => a - b);
          for (const p of [q, 0, 0.5, 0.95, 0.99, 1]) {
            assertWithin(w.quantile(p), exactQuantile(sorted, p), w.relativeError, `q=${p}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("reads several quantiles in one pass as it reads each alone", () => {
    const w = new WindowedQuantiles({ now: () => 0 });
    for (let i = 1; i <= 1000; i++) w.observe(i / 1e4);
    const qs = [0.5, 0.95, 0.99];
    assert.deepEqual(
      w.quantiles(qs),
      qs.map((q) => w.quantile(q)),
    );
    assertWithin(w.quantile(0.5), 0.05, 0.01, "p50 of 0.1 ms .. 100 ms");
    assertWithin(w.quantile(0.99), 0.099, 0.01, "p99 of 0.1 ms .. 100 ms");
  });

  it("is NaN while the window is empty", () => {
    const w = new WindowedQuantiles({ now: () => 0 });
    assert.ok(Number.isNaN(w.quantile(0.5)));
    assert.deepEqual(w.quantiles([0.5, 0.99]), [Number.NaN, Number.NaN]);
  });

  it("lets values leave once the 60 s window has passed them, slot by slot", () => {
    const c = clock();
    const w = new WindowedQuantiles({ now: c.now }); // 5 slots of 12 s
    w.observe(0.001); // slot 0 (0 .. 12 s)
    c.set(24_000);
    w.observe(0.1); // slot 2 (24 .. 36 s)
    c.set(59_999);
    assert.equal(w.windowCount(), 2, "both within 60 s of their slot's start");
    assertWithin(w.quantile(0), 0.001, 0.01, "the older value still counts");
    c.set(60_000);
    assert.equal(w.windowCount(), 1, "slot 0 reused: the value of t=0 is gone");
    assertWithin(w.quantile(0), 0.1, 0.01, "only the newer value");
    c.set(84_000);
    assert.equal(w.windowCount(), 0, "slot 2 reused too");
    assert.ok(Number.isNaN(w.quantile(0.5)));
  });

  it("empties the window after an idle period longer than the window", () => {
    const c = clock();
    const w = new WindowedQuantiles({ now: c.now });
    for (let s = 0; s < 5; s++) {
      c.set(s * 12_000);
      w.observe(0.01);
    }
    assert.equal(w.windowCount(), 5);
    c.set(10 * 60_000 + 5_000);
    assert.equal(w.windowCount(), 0);
    w.observe(0.02);
    assertWithin(w.quantile(0.5), 0.02, 0.01, "a new value after the gap");
  });

  it("keeps sum and count cumulative when values leave the window", () => {
    const c = clock();
    const w = new WindowedQuantiles({ now: c.now });
    w.observe(0.25);
    w.observe(0.5);
    c.set(120_000);
    w.observe(1);
    assert.equal(w.windowCount(), 1);
    assert.equal(w.count, 3);
    assert.equal(w.sum, 1.75);
  });

  it("ignores NaN, negative and infinite values: they count nowhere", () => {
    const w = new WindowedQuantiles({ now: () => 0 });
    for (const v of [Number.NaN, -1, -1e-9, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) w.observe(v);
    assert.equal(w.count, 0);
    assert.equal(w.sum, 0);
    assert.equal(w.windowCount(), 0);
    assert.ok(Number.isNaN(w.quantile(0.5)));
  });

  it("counts values below 1 µs (0 included) in the first bucket and above 100 s in the last", () => {
    const low = new WindowedQuantiles({ now: () => 0 });
    low.observe(0);
    low.observe(1e-12);
    assert.equal(low.windowCount(), 2);
    assertWithin(low.quantile(1), 1e-6, 0.01, "read back as ~1 µs");
    const high = new WindowedQuantiles({ now: () => 0 });
    high.observe(1e6);
    assertWithin(high.quantile(0.5), 100, 0.01, "read back as ~100 s");
    assert.equal(high.sum, 1e6, "the sum keeps the value itself");
  });
});

describe("WindowedSummary", () => {
  const help = "Datagram received to PCM handed to the agent";

  it("renders in a Registry as a prom-client Summary does: quantiles, _sum, _count", async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ instance: "1" });
    const s = new WindowedSummary({
      name: "gateway_upstream_seconds",
      help,
      percentiles: [0.5, 0.95, 0.99],
      registers: [registry],
      now: () => 0,
    });
    for (let i = 1; i <= 100; i++) s.observe(i / 1000);
    const [p50, p95, p99] = [s.quantile(0.5), s.quantile(0.95), s.quantile(0.99)];
    assertWithin(p50, 0.05, 0.01, "p50");
    assertWithin(p95, 0.095, 0.01, "p95");
    assertWithin(p99, 0.099, 0.01, "p99");
    assert.equal(
      await registry.metrics(),
      [
        `# HELP gateway_upstream_seconds ${help}`,
        "# TYPE gateway_upstream_seconds summary",
        `gateway_upstream_seconds{quantile="0.5",instance="1"} ${p50}`,
        `gateway_upstream_seconds{quantile="0.95",instance="1"} ${p95}`,
        `gateway_upstream_seconds{quantile="0.99",instance="1"} ${p99}`,
        `gateway_upstream_seconds_sum{instance="1"} ${s.sum}`,
        'gateway_upstream_seconds_count{instance="1"} 100',
        "",
      ].join("\n"),
    );
  });

  it("renders an empty window exactly as an empty prom-client Summary: quantiles 0", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    for (const r of [ours, theirs]) r.setDefaultLabels({ instance: "2" });
    const s = new WindowedSummary({
      name: "x_seconds",
      help,
      percentiles: [0.5, 0.95, 0.99],
      registers: [ours],
    });
    new Summary({
      name: "x_seconds",
      help,
      percentiles: [0.5, 0.95, 0.99],
      maxAgeSeconds: 60,
      ageBuckets: 5,
      registers: [theirs],
    });
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.equal(s.quantile(0.5), 0, "what /health reads, as /metrics shows it");
  });

  it("serves the gateway's four latency summaries from GatewayMetrics' registry", async () => {
    const m = new GatewayMetrics(1);
    try {
      m.agentDecodeLatency.observe(0.004);
      const text = await m.registry.metrics();
      for (const name of [
        "gateway_hello_reply_seconds",
        "gateway_upstream_seconds",
        "gateway_downstream_seconds",
        "gateway_agent_decode_seconds",
      ]) {
        assert.match(text, new RegExp(`^# TYPE ${name} summary$`, "m"));
        assert.match(text, new RegExp(`^${name}_count\\{instance="1"\\} \\d+$`, "m"));
      }
      // How tools/livekit-rooms.ts reads the decode latency.
      const line = text
        .split("\n")
        .find((l) => l.startsWith("gateway_agent_decode_seconds{") && l.includes('quantile="0.5"'));
      assertWithin(Number(line?.split(" ").pop()), 0.004, 0.01, "decode p50 parsed from the text");
    } finally {
      m.stop();
    }
  });
});
