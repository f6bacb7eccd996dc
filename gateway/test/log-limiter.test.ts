import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LogLimiter } from "../src/ops/log.ts";

describe("LogLimiter", () => {
  it("lets 5 lines a minute through per key, then reports how many it held back", () => {
    const l = new LogLimiter(5, 60_000);
    const emitted: number[] = [];
    for (let i = 0; i < 20; i++) l.run("k", (s) => emitted.push(s), 1000);
    assert.deepEqual(emitted, [0, 0, 0, 0, 0]);
    l.run("k", (s) => emitted.push(s), 62_000);
    assert.equal(emitted.at(-1), 15);
  });
});
