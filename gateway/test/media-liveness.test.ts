/**
 * The media process's liveness rule (media-liveness.ts), on an injected clock: a ping each
 * interval while answered, hung once a ping has waited the hang timeout, and no verdict on
 * a tick that comes late because the gateway's own event loop stalled.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MediaLiveness } from "../src/agent/livekit/media/media-liveness.ts";

const INTERVAL = 1000;
const HANG = 3000;

describe("media process liveness", () => {
  it("an answered ping is followed by the next one at the next tick, with its round trip", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    assert.deepEqual(l.tick(0), { kind: "ping", seq: 1 });
    assert.equal(l.pong(1, 2), 2);
    assert.deepEqual(l.tick(1000), { kind: "ping", seq: 2 });
  });

  it("a child silent to a ping for the hang timeout is hung, not before", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    l.tick(0);
    assert.equal(l.tick(1000), undefined);
    assert.equal(l.tick(2000), undefined);
    assert.deepEqual(l.tick(3000), { kind: "hung", silentMs: 3000 });
  });

  it("the tick due at the hang timeout gives the verdict though it came a fraction early", () => {
    // A repeating timer's ticks, read on the monotonic clock, come a fraction of a
    // millisecond under the interval apart as often as over it (Node schedules them on the
    // loop's millisecond clock). Three such ticks after the ping fell short of 3000 ms, the
    // verdict waited a whole interval more, and a SIGSTOPped child was noticed 4.58 s after
    // it stopped in a CI run, against the 3-4 s this rule promises.
    const l = new MediaLiveness(INTERVAL, HANG);
    l.tick(0);
    assert.equal(l.tick(999.7), undefined);
    assert.equal(l.tick(1999.5), undefined);
    assert.deepEqual(l.tick(2999.2), { kind: "hung", silentMs: 2999.2 });
  });

  it("an answer to an older ping does not clear the one awaited", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    l.tick(0);
    assert.equal(l.pong(7, 10), undefined);
    assert.equal(l.tick(1000), undefined, "still awaiting ping 1: no new ping");
    assert.deepEqual(l.tick(3000), { kind: "hung", silentMs: 3000 });
  });

  it("a tick late from a stalled event loop gives no verdict; the answer read after it counts", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    l.tick(0);
    // The loop stalled 5 s: the pong sits unread in the pipe while this tick runs first.
    assert.equal(l.tick(5000), undefined);
    assert.equal(l.pong(1, 5001), 5001);
    assert.deepEqual(l.tick(6000), { kind: "ping", seq: 2 });
  });

  it("a child still silent after the stall is hung at the next tick", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    l.tick(0);
    assert.equal(l.tick(5000), undefined);
    assert.deepEqual(l.tick(6000), { kind: "hung", silentMs: 6000 });
  });

  it("says whether a ping still waits for its answer", () => {
    const l = new MediaLiveness(INTERVAL, HANG);
    assert.equal(l.awaiting, false);
    l.tick(0);
    assert.equal(l.awaiting, true);
    l.pong(1, 5);
    assert.equal(l.awaiting, false);
  });
});
