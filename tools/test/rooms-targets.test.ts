import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatRoomTargets, judgeRoomTargets, type TargetVerdict } from "../load/rooms-targets.ts";
import { result } from "./support/room-rows.ts";

function verdict(verdicts: TargetVerdict[], starts: string): TargetVerdict {
  const v = verdicts.find((x) => x.target.startsWith(starts));
  assert.ok(v, `a verdict on "${starts}"`);
  return v;
}

// The family 25 model 17 EPYC, 2026-12-07 (docs/performance.md): the process transport's
// run from 10 to 100 rooms, and rtc-node's rows of the run before it.
const zen4Process = result([
  { rooms: 10, perRoom: 0.86, rssPerRoom: 3.44, fpsUp: 101, upP99: 0.19, decodeP99: 0.61 },
  { rooms: 25, perRoom: 0.672, rssPerRoom: 2.72, fpsUp: 253, upP99: 0.17, decodeP99: 1.72 },
  { rooms: 50, perRoom: 0.603, rssPerRoom: 2.29, fpsUp: 506, upP99: 0.17, decodeP99: 2.95 },
  { rooms: 100, perRoom: 0.484, rssPerRoom: 1.79, fpsUp: 1010, upP99: 0.16, decodeP99: 5.49 },
]);
const zen4RtcNode = result([
  { rooms: 10, perRoom: 4.31, fpsUp: 95 },
  { rooms: 25, perRoom: 3.994, fpsUp: 237 },
]);

describe("bench:rooms judged against the issue's targets", () => {
  it("a limit met only at the largest step is not met, and says where it was", () => {
    const cpu = verdict(judgeRoomTargets(zen4Process, zen4RtcNode), "CPU per room");
    assert.equal(cpu.met, false);
    assert.equal(cpu.note, "met at 100 rooms only");
    assert.equal(cpu.figures, "10: 0.860, 25: 0.672, 50: 0.603, 100: 0.484");
    const rss = verdict(judgeRoomTargets(zen4Process, zen4RtcNode), "RSS per room");
    assert.equal(rss.met, false);
    assert.equal(rss.note, "met at 100 rooms only");
  });

  it("flatness is the highest cost per room over the lowest, from 10 to 100 rooms", () => {
    const flat = verdict(judgeRoomTargets(zen4Process), "flat within 20 %");
    assert.equal(flat.met, false);
    assert.equal(flat.figures, "1.78x");
    const steady = result([
      { rooms: 10, perRoom: 0.45 },
      { rooms: 100, perRoom: 0.4 },
      { rooms: 250, perRoom: 0.1 },
    ]);
    assert.equal(
      verdict(judgeRoomTargets(steady), "flat within").met,
      true,
      "250 rooms is outside 10 to 100",
    );
  });

  it("the ratio against rtc-node is taken at the steps both ran", () => {
    const ratio = verdict(judgeRoomTargets(zen4Process, zen4RtcNode), "at least 8x");
    assert.equal(ratio.met, false);
    assert.equal(ratio.figures, "10: 5.0x, 25: 5.9x");
  });

  it("a step where rtc-node passed on under 90 % of the device frames is left out, named", () => {
    const saturated = result([
      { rooms: 10, perRoom: 8, fpsUp: 100 },
      { rooms: 25, perRoom: 5.6, fpsUp: 61 },
    ]);
    const process = result([
      { rooms: 10, perRoom: 0.9, fpsUp: 101 },
      { rooms: 25, perRoom: 0.6, fpsUp: 253 },
    ]);
    const ratio = verdict(judgeRoomTargets(process, saturated), "at least 8x");
    assert.equal(ratio.figures, "10: 8.9x");
    assert.equal(ratio.met, true);
    assert.match(ratio.note, /left out, rtc-node saturated: 25 rooms/);
    const onlySaturated = result([{ rooms: 25, perRoom: 5.6, fpsUp: 61 }]);
    assert.equal(verdict(judgeRoomTargets(process, onlySaturated), "at least 8x").met, undefined);
  });

  it("without an rtc-node run, or a step of 10 rooms or more, the run cannot tell", () => {
    assert.equal(verdict(judgeRoomTargets(zen4Process), "at least 8x").met, undefined);
    const small = judgeRoomTargets(result([{ rooms: 1, perRoom: 2.8 }]));
    for (const v of small) assert.equal(v.met, undefined, v.target);
  });

  it("a figure above idle that is below zero (the baseline read high) cannot be judged", () => {
    const unsettled = result([{ rooms: 10, perRoom: 0.4, rssPerRoom: -0.59 }]);
    assert.equal(verdict(judgeRoomTargets(unsettled), "RSS per room").met, undefined);
    const unsettledCpu = result([
      { rooms: 10, perRoom: -0.1 },
      { rooms: 100, perRoom: 0.4 },
    ]);
    assert.equal(verdict(judgeRoomTargets(unsettledCpu), "flat within").met, undefined);
    const rtc = result([{ rooms: 10, perRoom: 4 }]);
    assert.equal(verdict(judgeRoomTargets(unsettledCpu, rtc), "at least 8x").met, undefined);
  });

  it("a run within every target is met on each", () => {
    const good = result([
      { rooms: 10, perRoom: 0.45, rssPerRoom: 1.9 },
      { rooms: 100, perRoom: 0.4, rssPerRoom: 1.5 },
    ]);
    const rtc = result([{ rooms: 10, perRoom: 4 }]);
    for (const v of judgeRoomTargets(good, rtc)) assert.equal(v.met, true, v.target);
  });

  it("latency over its limit at any step is not met", () => {
    const slow = result([
      { rooms: 10, perRoom: 0.4, decodeP99: 3 },
      { rooms: 100, perRoom: 0.4, decodeP99: 21.4 },
    ]);
    const down = verdict(judgeRoomTargets(slow), "added latency down");
    assert.equal(down.met, false);
    assert.equal(down.note, "met at 10 rooms only");
  });

  it("the printed table says when the run's traffic is not the one the targets are stated for", () => {
    const verdicts = judgeRoomTargets(zen4Process, zen4RtcNode);
    const stated = formatRoomTargets("process", verdicts, {
      deviceTalk: 0.3,
      agentTalk: 0.35,
      agentFrameMs: 20,
    });
    assert.doesNotMatch(stated, /indicative only/);
    assert.match(
      stated,
      /\| CPU per room above idle <= 0.5 % of a core \| 10: 0.860, .* \| \*\*not met\*\* \|/,
    );
    const other = formatRoomTargets("process", verdicts, {
      deviceTalk: null,
      agentTalk: 0.35,
      agentFrameMs: 20,
    });
    assert.match(other, /indicative only/);
  });
});
