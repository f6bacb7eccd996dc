/**
 * A draining instance opens no session (hello-route.ts). A peer that chose it for
 * balancing before it saw "draining" may still forward it a hello; answering would claim
 * the device away from its good session elsewhere, and nothing would close the new one
 * before the process exits (peers send no goodbye for a peer that drained). The hello goes
 * on to a live peer with its first arrival time, or is dropped and counted.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forwardPayload, parseForward } from "../src/protocol/coordination.ts";
import { MAX_DEVICE_MESSAGE_BYTES } from "../src/protocol/messages.ts";
import { forwardTopic } from "../src/protocol/topics.ts";
import type { Gateway } from "../src/session/gateway.ts";
import { announcePeer, type Core, freshCores, MINIMAL_HELLO, replyTarget } from "./support/core.ts";

const DEVICE = "GID_test@@@02_00_00_00_00_31@@@u31";
const NOW = 1_796_000_000_000;
/** When the hello reached the instance that first forwarded it. */
const FIRST_ARRIVAL = NOW - 1200;

describe("a hello that reaches a draining instance", () => {
  const { fresh, published } = freshCores();
  let core: Core | undefined;

  /** Instance 1, draining, with peer 2 in the given state (or none). */
  const draining = async (peer2?: "up" | "draining"): Promise<Gateway> => {
    core = await fresh({ now: () => NOW });
    if (peer2) announcePeer(core.gateway, { instanceId: 2, bootId: "peerboot2" }, peer2);
    await core.gateway.drain();
    return core.gateway;
  };
  /** A hello a peer forwarded to instance 1 (`hops`: how many instances passed it on). */
  const forwardedHello = (gateway: Gateway, hops = 1) =>
    gateway.handleBrokerMessage(
      forwardTopic(1),
      Buffer.from(forwardPayload(DEVICE, MINIMAL_HELLO, FIRST_ARRIVAL, hops)),
    );
  const repliesToDevice = () => published.filter((p) => replyTarget(p.topic) === DEVICE);
  const claims = () => published.filter((p) => p.topic.startsWith("gateway/claims/"));
  const forwardsTo = (instanceId: number) =>
    published
      .filter((p) => p.topic === forwardTopic(instanceId))
      .map((p) => parseForward(Buffer.from(p.payload)));
  const drainingDrops = () => (core as Core).metrics.dropCount("mqtt_hello_draining");

  it("forwarded by a peer: passed on to a live peer with its first arrival time, not answered", async () => {
    const gateway = await draining("up");
    forwardedHello(gateway);
    assert.equal(gateway.sessions.size, 0);
    assert.deepEqual(repliesToDevice(), [], "no hello reply");
    assert.deepEqual(claims(), [], "no claim");
    assert.deepEqual(forwardsTo(2), [
      { clientId: DEVICE, payload: MINIMAL_HELLO.toString("utf8"), arrivedAt: FIRST_ARRIVAL, hops: 2 },
    ]);
  });

  it("forwarded by a peer, no other peer taking hellos: dropped and counted, not answered", async () => {
    const gateway = await draining("draining");
    forwardedHello(gateway);
    assert.equal(gateway.sessions.size, 0);
    assert.deepEqual(repliesToDevice(), []);
    assert.deepEqual(claims(), []);
    assert.deepEqual(forwardsTo(2), []);
    assert.equal(drainingDrops(), 1);
  });

  it("passed on by two instances already: dropped, not passed on a third time", async () => {
    // Two draining peers that each still see the other up would otherwise bounce it.
    const gateway = await draining("up");
    forwardedHello(gateway, 2);
    assert.deepEqual(forwardsTo(2), []);
    assert.deepEqual(repliesToDevice(), []);
    assert.equal(drainingDrops(), 1);
  });

  it("straight from the broker (in flight as we unsubscribed), no live peer: dropped, no session", async () => {
    const gateway = await draining();
    gateway.handleBrokerMessage(`ingest/${DEVICE}`, MINIMAL_HELLO);
    assert.equal(gateway.sessions.size, 0);
    assert.deepEqual(repliesToDevice(), []);
    assert.equal(drainingDrops(), 1);
  });

  it("straight from the broker, a live peer: passed on once, with its arrival time", async () => {
    const gateway = await draining("up");
    gateway.handleBrokerMessage(`ingest/${DEVICE}`, MINIMAL_HELLO, FIRST_ARRIVAL);
    assert.deepEqual(
      forwardsTo(2).map((f) => [f?.arrivedAt, f?.hops]),
      [[FIRST_ARRIVAL, 1]],
    );
    assert.deepEqual(repliesToDevice(), []);
  });
});

describe("a hello a draining peer passed on, at a live instance", () => {
  const cores = freshCores();
  const { published } = cores;
  let core: Core | undefined;
  const fresh = async (): Promise<Gateway> => {
    core = await cores.fresh({ now: () => NOW });
    return core.gateway;
  };
  const hello = (gateway: Gateway, arrivedAt: number) =>
    gateway.handleBrokerMessage(
      forwardTopic(1),
      Buffer.from(forwardPayload(DEVICE, MINIMAL_HELLO, arrivedAt, 2)),
    );
  const repliesToDevice = () => published.filter((p) => replyTarget(p.topic) === DEVICE);

  it("is answered: a session opens with the hello's first arrival time in its claim", async () => {
    const gateway = await fresh();
    hello(gateway, FIRST_ARRIVAL);
    assert.equal(gateway.sessions.size, 1);
    assert.equal(repliesToDevice().length, 1);
    const claim = published.find((p) => p.topic === `gateway/claims/${DEVICE}`);
    assert.equal(JSON.parse(claim?.payload ?? "{}").helloAt, FIRST_ARRIVAL);
  });

  it("is answered though invalid UTF-8 in it grew past the size limit on the way", async () => {
    const gateway = await fresh();
    // 4 KB where it arrived, under the 8 KB limit; carried as text, each invalid byte is
    // U+FFFD, 3 bytes, at this end.
    const raw = Buffer.concat([
      Buffer.from('{"type":"hello","version":3,"transport":"udp","note":"'),
      Buffer.alloc(4000, 0xff),
      Buffer.from('"}'),
    ]);
    assert.ok(raw.length <= MAX_DEVICE_MESSAGE_BYTES);
    gateway.handleBrokerMessage(forwardTopic(1), Buffer.from(forwardPayload(DEVICE, raw, FIRST_ARRIVAL, 2)));
    assert.equal((core as Core).metrics.dropCount("mqtt_oversized"), 0);
    assert.equal(repliesToDevice().length, 1);
  });

  it("is not answered when its first arrival is too long ago (the device gave up on it)", async () => {
    const gateway = await fresh();
    hello(gateway, NOW - 6000);
    assert.equal(gateway.sessions.size, 0);
    assert.deepEqual(repliesToDevice(), []);
    assert.equal((core as Core).metrics.dropCount("mqtt_hello_too_late"), 1);
  });
});
