/**
 * The main loop's clock (ops/watchdog.ts, LoopClock) on injected clocks: a message read after
 * a stall is dated to the last turn before it; the stall is measured on the monotonic clock,
 * so a step of the wall clock is not taken for one.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startLoopClock } from "../src/ops/watchdog.ts";

describe("the loop clock", () => {
  /** A loop clock that has not turned since it started (no beat runs within a test). */
  const clocks = () => {
    const t = { wall: 1_000_000, mono: 50 };
    const clock = startLoopClock(
      100,
      1000,
      () => t.wall,
      () => t.mono,
    );
    return { t, clock };
  };

  it("dates a message read after a stall of the loop to the last turn before it", () => {
    const { t, clock } = clocks();
    t.wall += 5000;
    t.mono += 5000;
    assert.equal(clock.arrivedAt(), 1_000_000);
    clock.stop();
  });

  it("takes a step of the wall clock for no stall: the message arrived now", () => {
    const { t, clock } = clocks();
    t.wall += 10_000;
    t.mono += 1;
    assert.equal(clock.arrivedAt(), 1_010_000);
    clock.stop();
  });
});
