import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { parseRoomsOptions } from "../load/rooms-options.ts";

describe("bench:rooms' command line", () => {
  it("by default: both transports, the issue's traffic, and every default spelled out in the command", () => {
    const o = parseRoomsOptions([]);
    assert.deepEqual(
      o.variants.map((v) => v.label),
      ["process", "rtc-node"],
    );
    assert.deepEqual(o.steps, [10, 25, 50, 100]);
    assert.equal(o.talk, 0.3);
    assert.equal(o.agentTalk, 0.35);
    assert.equal(o.agentFrameMs, 20);
    assert.equal(o.settleMs, 60_000);
    assert.match(
      o.command,
      /--steps 10,25,50,100 --seconds 10 --talk 0.3 --agent-talk 0.35 --agent-frame-ms 20/,
    );
  });

  it("media threads and Node options vary the process transport only, each a labelled variant", () => {
    const o = parseRoomsOptions([
      "--media-threads",
      "1,2",
      "--node-args=--max-semi-space-size=64",
      "--node-args=",
    ]);
    assert.deepEqual(
      o.variants.map((v) => v.label),
      [
        "process, 1 thread, --max-semi-space-size=64",
        "process, 1 thread, default Node options",
        "process, 2 threads, --max-semi-space-size=64",
        "process, 2 threads, default Node options",
        "rtc-node",
      ],
    );
  });

  it("`--talk none` never opens the microphones; a share outside 0..1 is refused", () => {
    assert.equal(parseRoomsOptions(["--talk", "none"]).talk, null);
    assert.throws(
      () => parseRoomsOptions(["--talk", "1.5"]),
      /--talk must be a share of time from 0 to 1, or none/,
    );
    assert.throws(
      () => parseRoomsOptions(["--agent-frame-ms", "30"]),
      /--agent-frame-ms must be 10, 20, 40 or 60/,
    );
    assert.throws(() => parseRoomsOptions(["--repeat", "0"]), /--repeat must be a whole number >= 1/);
  });

  it("`--compare-dist` without a built bundle there says what to run", () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), "rooms-options-"));
    try {
      assert.throws(
        () => parseRoomsOptions(["--compare-dist", empty]),
        /no gateway\/main.js and bin\/voice-media there \(run npm run build in that tree\)/,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
