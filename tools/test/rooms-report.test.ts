import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatRatioTable, formatStepRow, type VariantResult } from "../load/rooms-report.ts";
import { result } from "./support/room-rows.ts";

const processRun = result([
  { rooms: 10, perRoom: 0.86, rssPerRoom: 3.44 },
  { rooms: 25, perRoom: 0.672, rssPerRoom: 2.72 },
  { rooms: 100, perRoom: 0.484, rssPerRoom: 1.79 },
]);
const rtcNodeRun = result([
  { rooms: 10, perRoom: 4.31, rssPerRoom: 9.18 },
  { rooms: 25, perRoom: 3.994, rssPerRoom: 7.77 },
]);

function runs(entries: [string, VariantResult][]): Map<string, VariantResult> {
  return new Map(entries);
}

describe("bench:rooms' ratio of the two transports", () => {
  it("divides rtc-node's cost per room by the process transport's at each step both reached", () => {
    const table = formatRatioTable(
      runs([
        ["process", processRun],
        ["rtc-node", rtcNodeRun],
      ]),
      {
        process: "process",
        rtcNode: "rtc-node",
      },
    );
    assert.equal(
      table,
      [
        "| rooms | CPU per room above idle: rtc-node / process | RSS per room: rtc-node / process |",
        "|---:|---:|---:|",
        "| 10 | 5.0x | 2.7x |",
        "| 25 | 5.9x | 2.9x |",
      ].join("\n"),
    );
  });

  it("compares the variants it is given, whatever their labels", () => {
    const table = formatRatioTable(
      runs([
        ["process, 32 inline", processRun],
        ["rtc-node, 32 inline", rtcNodeRun],
      ]),
      { process: "process, 32 inline", rtcNode: "rtc-node, 32 inline" },
    );
    assert.match(table ?? "", /\| 10 \| 5\.0x \| 2\.7x \|/);
  });

  it("prints no ratio where the process transport's figure is at or below zero", () => {
    const noise = result([{ rooms: 10, perRoom: -0.01, rssPerRoom: 0 }]);
    const table = formatRatioTable(
      runs([
        ["process", noise],
        ["rtc-node", rtcNodeRun],
      ]),
      {
        process: "process",
        rtcNode: "rtc-node",
      },
    );
    assert.match(table ?? "", /\| 10 \| - \| - \|/);
  });

  it("has no table where either transport did not run", () => {
    assert.equal(formatRatioTable(runs([["process", processRun]]), { process: "process" }), undefined);
    assert.equal(formatRatioTable(runs([["rtc-node", rtcNodeRun]]), { rtcNode: "rtc-node" }), undefined);
  });
});

describe("bench:rooms' line for a step", () => {
  const measured = result([{ rooms: 10, perRoom: 0.86 }]).rows[0];
  assert.ok(measured);

  it("prints - for a figure the variant does not measure, not NaN", () => {
    // rtc-node has no media process to ping nor agent RTP to decode; nor does a build from
    // before the ping have the ping's summary (--compare-dist).
    const line = formatStepRow("rtc-node", {
      ...measured,
      pingP99: Number.NaN,
      decodeP50: Number.NaN,
      decodeP99: Number.NaN,
    });
    assert.doesNotMatch(line, /NaN/);
    const cells = line.split(" | ");
    assert.equal(cells[17], "- / -");
    assert.equal(cells[18], "-");
  });

  it("prints the ping's p99 where it was measured", () => {
    const cells = formatStepRow("process", { ...measured, pingP99: 1.153 }).split(" | ");
    assert.equal(cells[18], "1.15");
  });
});
