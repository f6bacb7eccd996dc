/**
 * What an instance does when a peer's presence says its sessions died (peer-watch.ts): the
 * devices of the dead boot's claims are told goodbye, so they re-hello at once. The will
 * ("gone") is covered with a real broker in session-ownership.test.ts; these cover a peer
 * back with a new boot whose will never reached us, and a peer that drained.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OpusPool } from "../src/audio/opus-pool.ts";
import type { GatewayMetrics } from "../src/ops/metrics.ts";
import { claimPayload } from "../src/protocol/coordination.ts";
import { claimTopic } from "../src/protocol/topics.ts";
import type { Gateway } from "../src/session/gateway.ts";
import { announcePeer, replyTarget, startCore } from "./support/core.ts";

const DEVICE = "GID_test@@@02_00_00_00_00_07@@@u7";
const OLD_BOOT = "peerboot1";
const OLD_SESSION = `2-${OLD_BOOT}-0123456789abcdef`;

describe("a peer whose sessions died", () => {
  let pool: OpusPool;
  let core: { gateway: Gateway; metrics: GatewayMetrics } | undefined;
  let published: { topic: string; payload: string }[];

  before(async () => {
    pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  });
  after(async () => {
    core?.metrics.stop();
    await pool.shutdown();
  });

  /** Instance 1, alone with peer 2, having seen peer 2's claim on DEVICE from its old boot. */
  const fresh = (): Gateway => {
    core?.metrics.stop();
    published = [];
    core = startCore({ pool, publish: (topic, payload) => published.push({ topic, payload }) });
    const claim = { instanceId: 2, bootId: OLD_BOOT, sessionId: OLD_SESSION, helloAt: Date.now() };
    core.gateway.handleBrokerMessage(claimTopic(DEVICE), Buffer.from(claimPayload(claim)));
    return core.gateway;
  };
  const goodbyes = () =>
    published
      .filter((p) => replyTarget(p.topic) === DEVICE)
      .map((p) => JSON.parse(p.payload) as { type?: string; session_id?: string })
      .filter((m) => m.type === "goodbye");
  const orphanGoodbyesSent = async () =>
    (await (core as { metrics: GatewayMetrics }).metrics.orphanGoodbyes.get()).values.reduce(
      (n, v) => n + v.value,
      0,
    );

  it("back with a new boot before its will reached us: its old session's device is told goodbye", async () => {
    const gateway = fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "up");
    assert.deepEqual(goodbyes(), [], "the claim's boot is alive");
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    assert.deepEqual(
      goodbyes().map((m) => m.session_id),
      [OLD_SESSION],
    );
    assert.equal(await orphanGoodbyesSent(), 1);
  });

  it("first heard of with a boot other than its claims': the claims are a dead boot's, told goodbye", async () => {
    const gateway = fresh();
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    assert.deepEqual(
      goodbyes().map((m) => m.session_id),
      [OLD_SESSION],
    );
  });

  it("each orphan is told once: the same presence again sends nothing more", async () => {
    const gateway = fresh();
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    assert.equal(goodbyes().length, 1);
  });

  it("a peer that drained said goodbye to its devices itself: its will sends nothing here", async () => {
    const gateway = fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "draining");
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(goodbyes(), []);
    assert.equal(await orphanGoodbyesSent(), 0);
  });

  it("a will that arrives without an earlier presence still names the dead boot: goodbye", async () => {
    const gateway = fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(
      goodbyes().map((m) => m.session_id),
      [OLD_SESSION],
    );
  });
});
