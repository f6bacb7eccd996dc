/**
 * A message forwarded to a peer that has just died went nowhere: when the peer's will
 * ("gone") or its new boot arrives, the device is told goodbye at once.
 * (Regression: before, such devices waited for their next message or their 120 s timeout.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createEchoAgent } from "../src/agent/echo.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import type { GatewayMetrics } from "../src/ops/metrics.ts";
import type { Gateway } from "../src/session/gateway.ts";
import { announcePeer, startCore } from "./support/core.ts";

const CLIENT = "GID_test@@@02_00_00_00_00_01@@@u1";
const PEER_SESSION = "2-peerboot1-0123456789abcdef";

describe("messages forwarded to a peer that died", () => {
  let pool: OpusPool;
  let metrics: GatewayMetrics;
  let gateway: Gateway;
  let published: { topic: string; payload: string }[];

  before(async () => {
    pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  });
  after(async () => {
    await pool.shutdown();
  });

  const fresh = () => {
    metrics?.stop();
    published = [];
    ({ gateway, metrics } = startCore({
      pool,
      me: { instanceId: 1, bootId: "meboot01" },
      idleTimeoutMs: 60_000,
      maxSessionMs: 60_000,
      agentFactory: createEchoAgent,
      publish: (topic, payload) => published.push({ topic, payload }),
    }));
    const presence = (state: string, bootId = "peerboot1") =>
      announcePeer(gateway, { instanceId: 2, bootId }, state);
    presence("up");
    gateway.handleBrokerMessage(
      `ingest/${CLIENT}`,
      Buffer.from(JSON.stringify({ session_id: PEER_SESSION, type: "listen", state: "start", mode: "auto" })),
    );
    assert.equal(published.at(-1)?.topic, "gateway/forward/2");
    return presence;
  };
  const goodbyes = () =>
    published.filter((p) => p.topic === `devices/p2p/${CLIENT}` && JSON.parse(p.payload).type === "goodbye");

  it("the peer's will arrives: goodbye with the forwarded session id", () => {
    const presence = fresh();
    presence("gone");
    assert.equal(goodbyes().length, 1);
    assert.equal(JSON.parse((goodbyes()[0] as { payload: string }).payload).session_id, PEER_SESSION);
  });

  it("the peer is back with a new boot: goodbye too", () => {
    const presence = fresh();
    presence("up", "peerboot2");
    assert.equal(goodbyes().length, 1);
  });

  it("the same peer and boot, still up: no goodbye", () => {
    const presence = fresh();
    presence("draining");
    assert.equal(goodbyes().length, 0);
    metrics.stop();
  });
});
