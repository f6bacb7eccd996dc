import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DecodeGroups, type GroupEntry } from "../src/agent/livekit/media/decode-groups.ts";

const OPTIONS = { frameMs: 60, burstGapMs: 100, lateMs: 25 };

function packet(n: number, arrivedMs = 0): GroupEntry {
  return { kind: "packet", payload: Buffer.from([n]), arrivedMs };
}

/** The packets' numbers in each group handed over, 20 ms packets arriving every 20 ms from t0. */
function run(groups: DecodeGroups, count: number, t0 = 0, tenths = 200, everyMs = 20): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const now = t0 + i * everyMs;
    const g = groups.add(packet(i + 1, now), tenths, now);
    if (g) out.push(g.map((e) => (e.kind === "packet" ? (e.payload[0] as number) : 0)));
  }
  return out;
}

describe("decode groups: one decode job per downstream frame", () => {
  it("hands over the first packet of a burst alone and at once", () => {
    const groups = new DecodeGroups(OPTIONS);
    assert.deepEqual(groups.add(packet(1), 200, 0)?.length, 1);
    assert.equal(groups.deadline, undefined);
  });

  it("then closes each group where a 60 ms frame ends: 1, 2-3, 4-6, 7-9", () => {
    assert.deepEqual(run(new DecodeGroups(OPTIONS), 9), [[1], [2, 3], [4, 5, 6], [7, 8, 9]]);
  });

  it("hands over 60 ms packets one by one (nothing to group)", () => {
    assert.deepEqual(run(new DecodeGroups(OPTIONS), 3, 0, 600, 60), [[1], [2], [3]]);
  });

  it("hands 40 ms packets over as soon as each completes a frame: 1, 2, 3, 4-5", () => {
    // Frames: 1 + half of 2, half of 2 + 3, 4 + half of 5.
    assert.deepEqual(run(new DecodeGroups(OPTIONS), 5, 0, 400, 40), [[1], [2], [3], [4, 5]]);
  });

  it("hands over an open group lateMs after its newest packet, and not before", () => {
    const groups = new DecodeGroups(OPTIONS);
    run(groups, 5); // [1], [2, 3], then 4 and 5 wait for 6
    assert.equal(groups.deadline, 80 + 25);
    assert.equal(groups.due(104), undefined);
    assert.deepEqual(groups.due(105)?.length, 2);
    assert.equal(groups.deadline, undefined);
  });

  it("keeps counting after a short group: the next closes at the following frame boundary", () => {
    const groups = new DecodeGroups(OPTIONS);
    run(groups, 2); // [1], then 2 waits (40 ms of the first frame)
    assert.deepEqual(groups.due(45)?.length, 1);
    // 3 arrives late, within the burst: it completes the first frame on its own.
    assert.deepEqual(groups.add(packet(3), 200, 60)?.length, 1);
    assert.equal(groups.add(packet(4), 200, 80), undefined);
    assert.equal(groups.add(packet(5), 200, 100), undefined);
    assert.deepEqual(groups.add(packet(6), 200, 120)?.length, 3);
  });

  it("starts the count again after a pause of burstGapMs", () => {
    const groups = new DecodeGroups(OPTIONS);
    run(groups, 2);
    groups.due(45);
    assert.deepEqual(run(groups, 3, 200), [[1], [2, 3]]);
  });

  it("counts a concealed packet as long as the last packet that arrived", () => {
    const groups = new DecodeGroups(OPTIONS);
    groups.add(packet(1), 200, 0);
    assert.equal(groups.add({ kind: "conceal" }, 0, 20), undefined);
    const g = groups.add(packet(3), 200, 40);
    assert.deepEqual(
      g?.map((e) => e.kind),
      ["conceal", "packet"],
    );
  });

  it("takes a packet whose length its TOC does not give as long as the last one", () => {
    const groups = new DecodeGroups(OPTIONS);
    groups.add(packet(1), 200, 0);
    assert.equal(groups.add(packet(2), 0, 20), undefined);
    assert.equal(groups.add(packet(3), 0, 40)?.length, 2);
  });

  it("forgets an open group on reset", () => {
    const groups = new DecodeGroups(OPTIONS);
    run(groups, 2);
    groups.reset();
    assert.equal(groups.deadline, undefined);
    assert.deepEqual(groups.add(packet(9), 200, 50)?.length, 1);
  });
});
