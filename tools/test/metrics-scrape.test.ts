/**
 * The benchmarks' reader of a gateway's /metrics (tools/load/metrics-scrape.ts), against
 * the text the gateway's own metrics render: bench:rooms reports each step's drops from it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayMetrics } from "../../gateway/src/ops/metrics.ts";
import { parseMetrics, sumOf } from "../load/metrics-scrape.ts";

describe("metrics scrape (bench tools)", () => {
  it("reads the drop counter by reason, past the instance label, and sums it", async () => {
    const metrics = new GatewayMetrics(3);
    for (let i = 0; i < 5; i++) metrics.drop("udp_rate_limited");
    metrics.drop("mqtt_malformed_json");
    const scrape = parseMetrics(await metrics.registry.metrics());
    const drops = scrape.byLabel("gateway_dropped_total", "reason");
    assert.equal(drops.get("udp_rate_limited"), 5);
    assert.equal(drops.get("mqtt_malformed_json"), 1);
    assert.equal(sumOf(drops), 6);
  });

  it("reads nothing for a metric name that only prefixes another", async () => {
    const metrics = new GatewayMetrics(1);
    metrics.drop("udp_rate_limited");
    const scrape = parseMetrics(await metrics.registry.metrics());
    assert.equal(scrape.byLabel("gateway_dropped", "reason").size, 0);
  });
});
