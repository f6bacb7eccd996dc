import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideOwner } from "../src/session/owner-routing.ts";
import { RecentForwards } from "../src/session/recent-forwards.ts";

describe("owner routing", () => {
  const me = { instanceId: 1, bootId: "aaaa1111" };
  const peers = new Map([[2, { bootId: "bbbb2222", state: "up" as const }]]);

  it("handles its own sessions, forwards a live peer's, and calls the rest stale", () => {
    assert.deepEqual(decideOwner("1-aaaa1111-0123456789abcdef", me, peers), { kind: "local" });
    assert.deepEqual(decideOwner("2-bbbb2222-0123456789abcdef", me, peers), {
      kind: "forward",
      instanceId: 2,
    });
    assert.deepEqual(decideOwner("2-cccc3333-0123456789abcdef", me, peers), { kind: "stale" }); // peer rebooted
    assert.deepEqual(decideOwner("3-dddd4444-0123456789abcdef", me, peers), { kind: "stale" }); // peer gone
    assert.deepEqual(decideOwner("1-zzzz9999-0123456789abcdef", me, peers), { kind: "stale" }); // my earlier boot
    assert.deepEqual(decideOwner("garbage", me, peers), { kind: "stale" });
  });
});

describe("RecentForwards", () => {
  it("returns what was forwarded to a peer within the window, once", () => {
    const r = new RecentForwards(3000, 100);
    r.add(2, "a", "2-x-1", 1000);
    r.add(2, "b", "2-x-2", 3500);
    r.add(3, "c", "3-y-1", 3500);
    assert.deepEqual(r.takeRecent(2, 4500), [{ clientId: "b", sessionId: "2-x-2" }]);
    assert.deepEqual(r.takeRecent(2, 4500), []);
    assert.equal(r.takeRecent(3, 4500).length, 1);
  });

  it("keeps at most maxPerPeer entries", () => {
    const r = new RecentForwards(60_000, 10);
    for (let i = 0; i < 50; i++) r.add(1, `c${i}`, `s${i}`, 1000 + i);
    const kept = r.takeRecent(1, 2000);
    assert.equal(kept.length, 10);
    assert.equal(kept[0]?.clientId, "c40");
  });
});
