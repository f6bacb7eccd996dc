/**
 * Republishing claims stays bounded however often it is asked for (claim-republish.ts):
 * after a broker restart every instance asks on its own reconnect and on each peer's
 * presence. Pure: the turns of the event loop are stepped by hand.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClaimRepublisher } from "../src/session/claim-republish.ts";

function republisher(count: number, batch = 100) {
  const items = Array.from({ length: count }, (_, i) => `device-${i}`);
  const closed = new Set<string>();
  const turns: (() => void)[] = [];
  const sent: string[] = [];
  const r = new ClaimRepublisher({
    items: () => items.filter((i) => !closed.has(i)),
    live: (i) => !closed.has(i),
    publish: (i) => sent.push(i),
    defer: (fn) => turns.push(fn),
    batch,
  });
  /** Runs the next turn; false when nothing is scheduled. */
  const turn = () => {
    const fn = turns.shift();
    fn?.();
    return fn !== undefined;
  };
  return { r, sent, closed, turn };
}

describe("claim republishing", () => {
  it("requests made before a pass starts share it: 1,000 claims, 100 a turn, once", () => {
    const { r, sent, turn } = republisher(1000);
    for (let i = 0; i < 4; i++) r.request(); // our reconnect, and three peers' retained presence
    assert.equal(sent.length, 0, "nothing before the pass starts");
    const perTurn: number[] = [];
    while (turn()) perTurn.push(sent.length);
    assert.deepEqual(perTurn, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    assert.equal(new Set(sent).size, 1000);
  });

  it("requests during a pass queue exactly one more pass, sent after them", () => {
    const { r, sent, turn } = republisher(250);
    r.request();
    turn(); // the pass starts: 100 sent
    for (let i = 0; i < 5; i++) r.request(); // peers back while it runs
    while (turn());
    assert.equal(sent.length, 500, "two passes of 250, not six");
    assert.deepEqual(sent.slice(250).sort(), sent.slice(0, 250).sort());
  });

  it("a session that closed before its batch is not claimed again", () => {
    const { r, sent, closed, turn } = republisher(150);
    r.request();
    turn();
    closed.add("device-120");
    while (turn());
    assert.equal(sent.length, 149);
    assert.ok(!sent.includes("device-120"));
  });
});
