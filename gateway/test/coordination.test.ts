/** The gateway-to-gateway messages and broker lifecycle events: each built and parsed in one place. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  claimPayload,
  forwardPayload,
  parseClaim,
  parseDisconnectReason,
  parseForward,
  parsePresence,
  presencePayload,
} from "../src/protocol/coordination.ts";
import { claimTopic, forwardTopic, presenceTopic, replyTopic, routeTopic } from "../src/protocol/topics.ts";
import { isTakeover, openedBeforeTakeover, TAKEOVER_GRACE_MS } from "../src/session/takeover.ts";

const CLIENT = "GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34";
const claim = {
  instanceId: 2,
  bootId: "lk2x9a0c1",
  sessionId: "2-lk2x9a0c1-4f0c9a1b2e3d4c5b",
  helloAt: 1_796_000_000_123,
};

describe("gateway coordination messages", () => {
  it("a claim and its release read back as they were built", () => {
    assert.deepEqual(parseClaim(Buffer.from(claimPayload(claim))), { ...claim, released: false });
    assert.deepEqual(parseClaim(Buffer.from(claimPayload(claim, true))), { ...claim, released: true });
  });

  it("a claim without its hello time is malformed", () => {
    const { helloAt: _, ...old } = claim;
    assert.equal(parseClaim(Buffer.from(JSON.stringify(old))), undefined);
  });

  it("presence reads back; an empty retained presence is gone; a live one needs its boot", () => {
    assert.deepEqual(parsePresence(Buffer.from(presencePayload("b1", "up", 8881))), {
      state: "up",
      bootId: "b1",
    });
    assert.deepEqual(parsePresence(Buffer.from(presencePayload("b1", "gone", 8881))), {
      state: "gone",
      bootId: "b1",
    });
    assert.deepEqual(parsePresence(Buffer.alloc(0)), { state: "gone", bootId: undefined });
    assert.equal(parsePresence(Buffer.from('{"state":"up"}')), undefined);
    assert.equal(parsePresence(Buffer.from('{"bootId":"b1","state":"sleeping"}')), undefined);
    assert.equal(parsePresence(Buffer.from("not json")), undefined);
  });

  it("a forwarded device message keeps its payload and arrival time", () => {
    const payload = Buffer.from('{"type":"listen","state":"start","session_id":"x"}');
    assert.deepEqual(parseForward(Buffer.from(forwardPayload(CLIENT, payload, 42))), {
      clientId: CLIENT,
      payload: payload.toString("utf8"),
      arrivedAt: 42,
      hops: 1,
    });
    assert.equal(parseForward(Buffer.from(forwardPayload(CLIENT, payload)))?.arrivedAt, undefined);
    assert.equal(parseForward(Buffer.from('{"clientId":1,"payload":"x"}')), undefined);
  });

  it("a hello passed on by a second instance says so; a forward that does not is its first hop", () => {
    const hello = Buffer.from('{"type":"hello","version":3,"transport":"udp"}');
    assert.equal(parseForward(Buffer.from(forwardPayload(CLIENT, hello, 42, 2)))?.hops, 2);
    assert.equal(
      JSON.parse(forwardPayload(CLIENT, hello, 42)).hops,
      undefined,
      "not on the wire for one hop",
    );
    assert.equal(parseForward(Buffer.from('{"clientId":"c","payload":"x"}'))?.hops, 1);
    for (const bad of ['"2"', "0", "1.5", "null"])
      assert.equal(parseForward(Buffer.from(`{"clientId":"c","payload":"x","hops":${bad}}`)), undefined, bad);
  });

  it("the broker's disconnect reason, when it gives one", () => {
    assert.equal(parseDisconnectReason(Buffer.from('{"reason":"takenover"}')), "takenover");
    assert.equal(parseDisconnectReason(Buffer.from('{"reason":3}')), undefined);
    assert.equal(parseDisconnectReason(Buffer.from("")), undefined);
  });

  it("a takeover is EMQX's takenover or discarded; the old connection's session is one hello'd the grace before", () => {
    assert.deepEqual(["takenover", "discarded", "normal", "keepalive_timeout", undefined].map(isTakeover), [
      true,
      true,
      false,
      false,
      false,
    ]);
    const eventAt = 1_796_000_010_000;
    assert.equal(openedBeforeTakeover(eventAt - TAKEOVER_GRACE_MS, eventAt), true);
    assert.equal(openedBeforeTakeover(eventAt - TAKEOVER_GRACE_MS + 1, eventAt), false);
    assert.equal(openedBeforeTakeover(eventAt + 5, eventAt), false, "a hello handled after the event");
  });

  it("every topic a gateway publishes routes back to what it names", () => {
    assert.deepEqual(routeTopic(claimTopic(CLIENT)), { kind: "claim", clientId: CLIENT });
    assert.deepEqual(routeTopic(presenceTopic(3)), { kind: "presence", instanceId: 3 });
    assert.deepEqual(routeTopic(forwardTopic(4)), { kind: "forward", instanceId: 4 });
    assert.equal(replyTopic(CLIENT), `devices/p2p/${CLIENT}`);
  });
});
