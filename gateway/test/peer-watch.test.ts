/**
 * What an instance does when a peer's presence says its sessions died (peer-watch.ts): the
 * devices of the dead boot's claims are told goodbye, so they re-hello at once. The will
 * ("gone") is covered with a real broker in session-ownership.test.ts; these cover a peer
 * back with a new boot whose will never reached us, a will of an old boot that arrives
 * after the new boot's presence, and a peer that drained.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { claimPayload } from "../src/protocol/coordination.ts";
import { claimTopic } from "../src/protocol/topics.ts";
import type { Gateway } from "../src/session/gateway.ts";
import { announcePeer, type Core, freshCores, MINIMAL_HELLO, replyTarget } from "./support/core.ts";

const DEVICE = "GID_test@@@02_00_00_00_00_07@@@u7";
const OTHER_DEVICE = "GID_test@@@02_00_00_00_00_08@@@u8";
const OLD_BOOT = "peerboot1";
const OLD_SESSION = `2-${OLD_BOOT}-0123456789abcdef`;
const NEW_BOOT = "peerboot2";
const NEW_SESSION = `2-${NEW_BOOT}-fedcba9876543210`;
const MY_BOOT = "myboot01";

describe("a peer whose sessions died", () => {
  const cores = freshCores();
  const { published } = cores;
  let core: Core | undefined;

  /** Instance 1, alone with peer 2, having seen peer 2's claim on DEVICE from its old boot. */
  const fresh = async (): Promise<Gateway> => {
    core = await cores.fresh();
    claimOf(core.gateway, DEVICE, OLD_SESSION);
    return core.gateway;
  };
  const claimOf = (gateway: Gateway, device: string, sessionId: string) => {
    const [, bootId = ""] = sessionId.split("-");
    const claim = { instanceId: 2, bootId, sessionId, helloAt: Date.now() };
    gateway.handleBrokerMessage(claimTopic(device), Buffer.from(claimPayload(claim)));
  };
  const goodbyes = (device = DEVICE) =>
    published
      .filter((p) => replyTarget(p.topic) === device)
      .map((p) => JSON.parse(p.payload) as { type?: string; session_id?: string })
      .filter((m) => m.type === "goodbye");
  const orphanGoodbyesSent = async () =>
    (await (core as Core).metrics.orphanGoodbyes.get()).values.reduce((n, v) => n + v.value, 0);

  it("back with a new boot before its will reached us: its old session's device is told goodbye", async () => {
    const gateway = await fresh();
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
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    assert.deepEqual(
      goodbyes().map((m) => m.session_id),
      [OLD_SESSION],
    );
  });

  it("each orphan is told once: the same presence again sends nothing more", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot2" }, "up");
    assert.equal(goodbyes().length, 1);
  });

  it("a peer that drained said goodbye to its devices itself: its will sends nothing here", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "draining");
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(goodbyes(), []);
    assert.equal(await orphanGoodbyesSent(), 0);
  });

  it("a will that arrives without an earlier presence still names the dead boot: goodbye", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(
      goodbyes().map((m) => m.session_id),
      [OLD_SESSION],
    );
  });

  it("a will of its old boot that arrives after its new boot's presence: the new boot stays live and reached", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: NEW_BOOT }, "up");
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(gateway.peers.get(2), { bootId: NEW_BOOT, state: "up" });
    const listen = { session_id: NEW_SESSION, type: "listen", state: "start", mode: "auto" };
    gateway.handleBrokerMessage(`ingest/${OTHER_DEVICE}`, Buffer.from(JSON.stringify(listen)));
    assert.equal(
      published.at(-1)?.topic,
      "gateway/forward/2",
      "forwarded to the new boot, not answered stale",
    );
    assert.deepEqual(goodbyes(OTHER_DEVICE), []);
  });

  it("that late will still names the old boot's sessions we had not yet told goodbye", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 2, bootId: NEW_BOOT }, "up");
    // The old boot's last claim, published just before it died, reaches us after the new
    // boot's presence (they come from two processes, in no set order).
    claimOf(gateway, OTHER_DEVICE, `2-${OLD_BOOT}-00000000000000aa`);
    announcePeer(gateway, { instanceId: 2, bootId: OLD_BOOT }, "gone");
    assert.deepEqual(
      goodbyes(OTHER_DEVICE).map((m) => m.session_id),
      [`2-${OLD_BOOT}-00000000000000aa`],
    );
    assert.equal(gateway.peers.get(2)?.bootId, NEW_BOOT);
  });
});

describe("our own presence topic", () => {
  const cores = freshCores();
  const { published } = cores;

  /** Instance 1, boot MY_BOOT, UDP port 8881. */
  const fresh = async (): Promise<Gateway> =>
    (await cores.fresh({ me: { instanceId: 1, bootId: MY_BOOT }, udpPort: 8881 })).gateway;
  const ourPresence = () => published.filter((p) => p.topic === "gateway/presence/1");

  it("reads gone for an earlier boot (its will, late): we say up again, retained", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 1, bootId: "earlierboot" }, "gone");
    assert.deepEqual(ourPresence(), [
      { topic: "gateway/presence/1", payload: gateway.presencePayload("up", 8881), retain: true },
    ]);
  });

  it("reads gone for our own boot while we drain (our clean shutdown): nothing", async () => {
    const gateway = await fresh();
    await gateway.drain();
    announcePeer(gateway, { instanceId: 1, bootId: MY_BOOT }, "gone");
    assert.deepEqual(ourPresence(), []);
  });

  it("reads gone for our own boot while we live (our will, after a cut connection): we say up again", async () => {
    const gateway = await fresh();
    announcePeer(gateway, { instanceId: 1, bootId: MY_BOOT }, "gone");
    assert.deepEqual(ourPresence(), [
      { topic: "gateway/presence/1", payload: gateway.presencePayload("up", 8881), retain: true },
    ]);
  });

  it("reads our own will with a live peer: our sessions end, their devices were told goodbye", async () => {
    const { gateway, metrics } = await cores.fresh({ me: { instanceId: 1, bootId: MY_BOOT } });
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot1" }, "up");
    gateway.handleBrokerMessage(`ingest/${DEVICE}`, MINIMAL_HELLO);
    assert.equal(gateway.sessions.size, 1);
    gateway.brokerDisconnected(); // the cut, with the session live
    announcePeer(gateway, { instanceId: 1, bootId: MY_BOOT }, "gone");
    assert.equal(gateway.sessions.size, 0);
    assert.equal(metrics.closes().orphaned, 1);
  });

  it("reads our own will: a session opened since the cut stays (no peer took it for dead)", async () => {
    const { gateway } = await cores.fresh({ me: { instanceId: 1, bootId: MY_BOOT } });
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot1" }, "up");
    gateway.brokerDisconnected();
    gateway.handleBrokerMessage(`ingest/${DEVICE}`, MINIMAL_HELLO);
    announcePeer(gateway, { instanceId: 1, bootId: MY_BOOT }, "gone");
    assert.equal(gateway.sessions.size, 1);
  });

  it("reads our own will with no live peer: our sessions stay, nobody told their devices anything", async () => {
    const { gateway } = await cores.fresh({ me: { instanceId: 1, bootId: MY_BOOT } });
    announcePeer(gateway, { instanceId: 2, bootId: "peerboot1" }, "draining");
    gateway.handleBrokerMessage(`ingest/${DEVICE}`, MINIMAL_HELLO);
    gateway.brokerDisconnected();
    announcePeer(gateway, { instanceId: 1, bootId: MY_BOOT }, "gone");
    assert.equal(gateway.sessions.size, 1);
  });

  it("reads gone for an earlier boot while we drain: nothing (we are leaving)", async () => {
    const gateway = await fresh();
    await gateway.drain();
    announcePeer(gateway, { instanceId: 1, bootId: "earlierboot" }, "gone");
    assert.deepEqual(ourPresence(), []);
  });
});
