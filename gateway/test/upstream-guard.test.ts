/**
 * The upstream sequence window and pinned address (pure): what a forged packet can and
 * cannot move, and that a NAT rebinding and a long outage still recover.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_CANDIDATE_GAP,
  MAX_SEQUENCE_JUMP,
  MOVE_AFTER,
  UpstreamGuard,
  type UpstreamVerdict,
} from "../src/session/upstream-guard.ts";

const device = { address: "203.0.113.5", port: 40000 };
const rebound = { address: "203.0.113.5", port: 40001 };
const attacker = { address: "198.51.100.66", port: 5555 };
const ok = () => true;
const garbage = () => false;

/** A guard that has taken the device's packets 1..n. */
function streaming(n = 10): UpstreamGuard {
  const g = new UpstreamGuard();
  for (let s = 1; s <= n; s++) assert.equal(g.admit(s, device, ok).kind, "accept");
  return g;
}

const dropped = (v: UpstreamVerdict) => (v.kind === "drop" ? v.reason : "accepted");

describe("UpstreamGuard", () => {
  it("pins the first packet's address and takes newer packets from it", () => {
    const g = new UpstreamGuard();
    assert.deepEqual(g.admit(1, device, ok), { kind: "accept", moved: true, missed: 0 });
    assert.deepEqual(g.admit(2, device, ok), { kind: "accept", moved: false, missed: 0 });
    assert.deepEqual(g.remote, device);
    assert.equal(g.lastSequence, 2);
  });

  it("reports the sequence numbers a packet taken skipped: frames missing from the stream", () => {
    const g = streaming(10);
    assert.deepEqual(g.admit(13, device, ok), { kind: "accept", moved: false, missed: 2 });
    assert.deepEqual(g.admit(14, device, ok), { kind: "accept", moved: false, missed: 0 });
    // The device numbers from 1: a first packet of 3 follows two lost.
    assert.deepEqual(new UpstreamGuard().admit(3, device, ok), { kind: "accept", moved: true, missed: 2 });
  });

  it("drops replays without decrypting them", () => {
    const g = streaming(5);
    let decrypted = 0;
    assert.equal(dropped(g.admit(5, device, () => ++decrypted > 0)), "udp_replay");
    assert.equal(dropped(g.admit(3, device, () => ++decrypted > 0)), "udp_replay");
    assert.equal(decrypted, 0);
  });

  it("a plausible packet from a new source never advances the pinned window, nor moves the address", () => {
    const g = streaming(10);
    for (let i = 0; i < MOVE_AFTER - 1; i++) {
      assert.equal(dropped(g.admit(2010 + i, attacker, ok)), "udp_unproven_source");
    }
    assert.equal(g.lastSequence, 10);
    assert.deepEqual(g.remote, device);
    // The device's own next frame is taken as if nothing happened.
    assert.equal(g.admit(11, device, ok).kind, "accept");
  });

  it("the reported attack: 256 forged payloads at seq+2000 from the attacker, ~1 in 80 plausible, move nothing", () => {
    const g = streaming(100);
    // Every 80th forged packet passes the Opus checks; the rest reset the candidate.
    for (let i = 0; i < 256; i++) g.admit(2100, attacker, () => i % 80 === 0);
    for (let i = 0; i < 256; i++) g.admit(2100 + i, attacker, () => i % 80 === 0);
    assert.equal(g.lastSequence, 100);
    assert.deepEqual(g.remote, device);
    assert.equal(g.admit(101, device, ok).kind, "accept");
  });

  it("a forged packet that fails the Opus check resets the forger's candidate", () => {
    const g = streaming(10);
    for (let i = 0; i < MOVE_AFTER - 1; i++) g.admit(11 + i, attacker, ok);
    g.admit(11 + MOVE_AFTER - 1, attacker, garbage);
    // One more plausible packet is the first of a new candidate, not the MOVE_AFTER-th.
    assert.equal(dropped(g.admit(11 + MOVE_AFTER, attacker, ok)), "udp_unproven_source");
    assert.deepEqual(g.remote, device);
  });

  it("a NAT rebinding moves the address after MOVE_AFTER consecutive plausible packets", () => {
    const g = streaming(10);
    for (let i = 1; i < MOVE_AFTER; i++) {
      assert.equal(dropped(g.admit(10 + i, rebound, ok)), "udp_unproven_source");
    }
    // The candidate's earlier packets were dropped: missing from the stream too.
    assert.deepEqual(g.admit(10 + MOVE_AFTER, rebound, ok), {
      kind: "accept",
      moved: true,
      missed: MOVE_AFTER - 1,
    });
    assert.deepEqual(g.remote, rebound);
    assert.equal(g.lastSequence, 10 + MOVE_AFTER);
    assert.equal(g.admit(11 + MOVE_AFTER, rebound, ok).kind, "accept");
    // The old socket is the stranger now.
    assert.equal(dropped(g.admit(12 + MOVE_AFTER, device, ok)), "udp_unproven_source");
  });

  it("a rebinding with a little loss still moves; a gap beyond MAX_CANDIDATE_GAP starts over", () => {
    const g = streaming(10);
    g.admit(11, rebound, ok);
    g.admit(11 + MAX_CANDIDATE_GAP, rebound, ok);
    g.admit(11 + 3 * MAX_CANDIDATE_GAP, rebound, ok); // too far: a new candidate of one
    for (let i = 1; i < MOVE_AFTER - 1; i++) g.admit(11 + 3 * MAX_CANDIDATE_GAP + i, rebound, ok);
    assert.deepEqual(g.remote, device);
    assert.equal(g.admit(11 + 3 * MAX_CANDIDATE_GAP + MOVE_AFTER - 1, rebound, ok).kind, "accept");
    assert.deepEqual(g.remote, rebound);
  });

  it("refuses a jump beyond MAX_SEQUENCE_JUMP from the device's own address, even the first packet", () => {
    const fresh = new UpstreamGuard();
    assert.equal(dropped(fresh.admit(MAX_SEQUENCE_JUMP + 1, device, ok)), "udp_sequence_jump");
    assert.equal(dropped(fresh.admit(0xffffffff, device, ok)), "udp_sequence_jump");
    assert.equal(fresh.admit(1, device, ok).kind, "accept");
    const g = streaming(10);
    assert.equal(dropped(g.admit(10 + MAX_SEQUENCE_JUMP + 1, device, ok)), "udp_sequence_jump");
    assert.equal(g.admit(10 + MAX_SEQUENCE_JUMP, device, ok).kind, "accept");
  });

  it("a device back after a long outage is taken again after MOVE_AFTER packets in order", () => {
    const g = streaming(10);
    const back = 10 + 10 * MAX_SEQUENCE_JUMP;
    for (let i = 0; i < MOVE_AFTER - 1; i++) {
      assert.equal(dropped(g.admit(back + i, device, ok)), "udp_sequence_jump");
    }
    assert.deepEqual(g.admit(back + MOVE_AFTER - 1, device, ok), {
      kind: "accept",
      moved: false,
      missed: back + MOVE_AFTER - 1 - 11,
    });
    assert.equal(g.lastSequence, back + MOVE_AFTER - 1);
  });

  it("calls the Opus check at most once per packet", () => {
    const g = streaming(3);
    for (const [seq, from] of [
      [4, device],
      [2000, device],
      [5, attacker],
    ] as const) {
      let calls = 0;
      g.admit(seq, from, () => ++calls > 0);
      assert.equal(calls, 1);
    }
  });
});
