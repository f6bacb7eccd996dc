/**
 * The RTP timing on either side of the media process: the upstream clock that stamps the
 * device's packets for the room's track, and the reorder buffer the agent's packets pass
 * before they are decoded.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FAR_BEHIND, JitterBuffer, type Released } from "../src/agent/livekit/media/jitter-buffer.ts";
import { UpstreamClock } from "../src/agent/livekit/media/upstream-clock.ts";

describe("upstream RTP clock", () => {
  it("consecutive 60 ms packets advance 2880 ticks each, whatever their jitter", () => {
    const c = new UpstreamClock(1000);
    assert.deepEqual(
      [0, 45, 130, 180, 250].map((t, i) => c.next(t, 60, i + 1)),
      [1000, 3880, 6760, 9640, 12520],
    );
  });

  it("20 ms packets advance 960 ticks", () => {
    const c = new UpstreamClock(5);
    assert.deepEqual(
      [0, 20, 40].map((t, i) => c.next(t, 20, i + 1)),
      [5, 965, 1925],
    );
  });

  it("a pause advances by the time elapsed, in whole frames", () => {
    const c = new UpstreamClock(0x10000);
    c.next(0, 60, 1);
    assert.equal(c.next(1030, 60, 2), 0x10000 + 17 * 2880);
  });

  it("a lost packet is a frame of its own, even when the next one comes early", () => {
    const c = new UpstreamClock(1000);
    // Sequence 3 never arrived; 4 came 110 ms after 2 (10 ms of jitter early).
    assert.deepEqual(
      [
        [0, 1],
        [60, 2],
        [170, 4],
        [230, 5],
      ].map(([t, seq]) => c.next(t as number, 60, seq as number)),
      [1000, 3880, 9640, 12520],
    );
  });

  it("a pause of more than half the timestamp space still steps forward (the Go SDK refuses a step of 2^31 or more as out of order)", () => {
    const c = new UpstreamClock(1000);
    c.next(0, 60, 1);
    const after = c.next(13 * 3_600_000, 60, 2);
    const step = (after - 1000) >>> 0;
    assert.ok(step >= 2880 && step < 2 ** 31, `step ${step}`);
    // And the packet after it is one frame on.
    assert.equal(c.next(13 * 3_600_000 + 60, 60, 3), (after + 2880) >>> 0);
  });

  it("wraps at 32 bits and never gives 0 (the Go SDK reads 0 as unset)", () => {
    const c = new UpstreamClock(2 ** 32 - 2880);
    assert.equal(c.next(0, 60, 1), 2 ** 32 - 2880);
    assert.equal(c.next(60, 60, 2), 1);
    assert.equal(c.next(120, 60, 3), 2881);
  });
});

const NONE = { late: 0, duplicate: 0, overflow: 0, far: 0, old_track: 0, new_track: 0, resync: 0 };

describe("reorder buffer", () => {
  /** A packet of the track heard under `generation` (the media process's count). */
  const pkt = (sequence: number, generation = 1) => ({
    generation,
    sequence,
    timestamp: sequence * 960,
    payload: Buffer.from([sequence & 0xff]),
  });
  const seqs = (r: Released[]) => r.map((x) => (x.kind === "packet" ? x.packet.sequence : `lost${x.count}`));

  it("in-order packets are released at once", () => {
    const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
    j.push(pkt(10), 0);
    assert.deepEqual(seqs(j.pop(0)), [10]);
    j.push(pkt(11), 1);
    assert.deepEqual(seqs(j.pop(1)), [11]);
    assert.equal(j.deadline, undefined);
  });

  it("a reordered packet is put back in sequence", () => {
    const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
    j.push(pkt(1), 0);
    j.pop(0);
    j.push(pkt(3), 5);
    assert.deepEqual(seqs(j.pop(5)), []);
    assert.equal(j.deadline, 35);
    j.push(pkt(2), 10);
    assert.deepEqual(seqs(j.pop(10)), [2, 3]);
    assert.equal(j.deadline, undefined);
  });

  it("a missing packet is given up after the wait and reported lost", () => {
    const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
    j.push(pkt(1), 0);
    j.pop(0);
    j.push(pkt(4), 10);
    assert.deepEqual(seqs(j.pop(39)), []);
    const released = j.pop(40);
    assert.deepEqual(seqs(released), ["lost2", 4]);
    assert.deepEqual(released[0], { kind: "lost", count: 2, overflow: false });
  });

  it("late and duplicate packets are dropped and counted", () => {
    const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
    j.push(pkt(5), 0);
    j.pop(0);
    assert.equal(j.push(pkt(4), 1), "late");
    j.push(pkt(7), 2);
    assert.equal(j.push(pkt(7), 3), "duplicate");
    assert.deepEqual(j.counts, { ...NONE, late: 1, duplicate: 1 });
  });

  it("holds at most maxPackets: beyond, the gap is given up at once", () => {
    const j = new JitterBuffer({ maxPackets: 3, waitMs: 1000 });
    j.push(pkt(0), 0);
    j.pop(0);
    for (const s of [2, 3, 4, 5]) j.push(pkt(s), 1);
    const released = j.pop(1);
    assert.deepEqual(seqs(released), ["lost1", 2, 3, 4, 5]);
    assert.deepEqual(released[0], { kind: "lost", count: 1, overflow: true });
    assert.equal(j.counts.overflow, 1);
    assert.equal(j.size, 0);
  });

  it("sequence numbers wrap at 16 bits", () => {
    const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
    j.push(pkt(65534), 0);
    j.push(pkt(0), 0);
    j.push(pkt(65535), 0);
    assert.deepEqual(seqs(j.pop(0)), [65534, 65535, 0]);
  });

  /** Pushes `seqs` one every 20 ms from `t0`, popping after each; returns what came out. */
  const play = (j: JitterBuffer, list: number[], t0 = 0) => {
    const out: (number | string)[] = [];
    list.forEach((s, i) => {
      j.push(pkt(s), t0 + i * 20);
      out.push(...seqs(j.pop(t0 + i * 20)));
    });
    return out;
  };
  const run = (from: number, n: number) => Array.from({ length: n }, (_, i) => (from + i) & 0xffff);

  /** Pushes `list` one every 20 ms from `t0` under `generation`, popping after each. */
  const playTrack = (j: JitterBuffer, generation: number, list: number[], t0: number) => {
    const out: (number | string)[] = [];
    list.forEach((s, i) => {
      j.push(pkt(s, generation), t0 + i * 20);
      out.push(...seqs(j.pop(t0 + i * 20)));
    });
    return out;
  };

  it("a new track 50 behind the old one is heard from its first packet (was: dropped as late)", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    assert.deepEqual(playTrack(j, 1, run(1000, 100), 0), run(1000, 100));
    // The media process heard a newer track: its own numbering, here 50 behind the old one.
    assert.equal(j.push(pkt(1050, 2), 3000), "new_track");
    assert.deepEqual(seqs(j.pop(3000)), [1050]);
    assert.deepEqual(playTrack(j, 2, run(1051, 99), 3020), run(1051, 99));
    assert.deepEqual(j.counts, { ...NONE, new_track: 1 });
  });

  it("a new track up to 3000 ahead of the old one plays at once (was: a loss gap, concealed)", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    playTrack(j, 1, run(100, 50), 0);
    assert.deepEqual(playTrack(j, 2, run(2100, 50), 1000), run(2100, 50));
    assert.deepEqual(j.counts, { ...NONE, new_track: 1 });
    assert.equal(j.deadline, undefined);
  });

  it("a new track far from the old one plays from its first packet, behind or ahead", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    playTrack(j, 1, run(40000, 50), 0);
    assert.deepEqual(playTrack(j, 2, run(10000, 50), 1000), run(10000, 50));
    assert.deepEqual(playTrack(j, 3, run(30000, 50), 2000), run(30000, 50));
    assert.deepEqual(j.counts, { ...NONE, new_track: 2 });
  });

  it("a packet of the old track queued after the new track's first is dropped as old_track", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    playTrack(j, 7, run(500, 20), 0);
    // The old track's reader checked it was heard just before the switch and sent just after.
    assert.equal(j.push(pkt(9000, 8), 400), "new_track");
    assert.equal(j.push(pkt(520, 7), 401), "old_track");
    assert.equal(j.push(pkt(521, 7), 402), "old_track");
    assert.deepEqual(playTrack(j, 8, run(9001, 20), 420), run(9000, 21));
    assert.deepEqual(j.counts, { ...NONE, old_track: 2, new_track: 1 });
  });

  it("a track heard again after a newer one ended restarts the buffer where that track is now", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    playTrack(j, 1, run(100, 20), 0);
    playTrack(j, 2, run(7000, 20), 400);
    // The first track went on while not heard: 40 packets on, under a new generation.
    assert.deepEqual(playTrack(j, 3, run(160, 20), 800), run(160, 20));
    assert.equal(j.push(pkt(7020, 2), 1200), "old_track");
    assert.deepEqual(j.counts, { ...NONE, old_track: 1, new_track: 2 });
  });

  it("generations compare across their 16-bit wrap", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    playTrack(j, 65535, run(100, 10), 0);
    assert.equal(j.push(pkt(90, 0), 200), "new_track");
    assert.equal(j.push(pkt(110, 65535), 201), "old_track");
    assert.equal(j.push(pkt(91, 0), 202), undefined);
    assert.deepEqual(seqs(j.pop(202)), [90, 91]);
  });

  it("at a new track the old track's held packets are released first, its gap reported lost", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    play(j, [1, 2, 4, 5]); // 3 is missing: 4 and 5 wait for it
    assert.equal(j.size, 2);
    assert.equal(j.push(pkt(30000, 2), 70), "new_track");
    assert.deepEqual(seqs(j.pop(70)), ["lost1", 4, 5, 30000]);
    assert.equal(j.deadline, undefined);
  });

  it("a jump in one track's own numbering restarts the buffer once the next packet confirms it", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    assert.deepEqual(play(j, run(40000, 50)), run(40000, 50));
    const out = play(j, run(10000, 500), 1000);
    // Its first packet is dropped (far), the second confirms it.
    assert.deepEqual(out, run(10001, 499));
    assert.deepEqual(j.counts, { ...NONE, far: 1, resync: 1 });
    assert.equal(j.deadline, undefined);
  });

  it("at a resync the old stream's held packets are released first, its gap reported lost", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    play(j, [1, 2, 4, 5]);
    j.push(pkt(30000), 70);
    assert.equal(j.push(pkt(30001), 71), "resync");
    assert.deepEqual(seqs(j.pop(71)), ["lost1", 4, 5, 30001]);
    assert.equal(j.deadline, undefined);
  });

  it("a single stray far-ahead packet costs that packet alone; the stream plays on", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    play(j, run(0, 20));
    assert.equal(j.push(pkt(20000), 390), "far");
    assert.deepEqual(play(j, run(20, 200), 400), run(20, 200));
    assert.deepEqual(j.counts, { ...NONE, far: 1 });
  });

  it("a stray near enough to be waited for, then jumped to, does not silence the stream", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    play(j, run(0, 20));
    j.push(pkt(1020), 390); // 1000 ahead: held as a gap, not far
    // The stream pauses past the wait: the gap is given up and the stray played.
    assert.deepEqual(seqs(j.pop(430)), ["lost1000", 1020]);
    // The stream goes on 1000 behind: far, and the next packet resyncs to it.
    assert.deepEqual(play(j, run(20, 100), 500), run(21, 99));
    assert.deepEqual(j.counts, { ...NONE, far: 1, resync: 1 });
  });

  it("late packets within reach stay late, even a burst of retransmissions (no resync)", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    play(j, run(1000, 200));
    // Next expected is 1200: 1200 - FAR_BEHIND is the farthest a late packet can be.
    const burst = run(1200 - FAR_BEHIND, 40);
    for (const s of burst) assert.equal(j.push(pkt(s), 5000), "late");
    assert.deepEqual(play(j, run(1200, 10), 5000), run(1200, 10));
    assert.equal(j.push(pkt(1205), 5300), "late");
    assert.deepEqual(j.counts, { ...NONE, late: 41 });
  });

  it("a stream runs across the 16-bit wrap without a restart, and so does a new track", () => {
    const j = new JitterBuffer({ maxPackets: 16, waitMs: 30 });
    assert.deepEqual(play(j, run(65000, 1000)), run(65000, 1000));
    assert.deepEqual(j.counts, NONE);
    // next is 464; a new track starting just before the wrap (65500 - 464 wraps to -500).
    assert.deepEqual(playTrack(j, 2, run(65500, 100), 30_000), run(65500, 100));
    assert.equal(j.push(pkt(65520, 2), 40_000), "late");
    assert.deepEqual(j.counts, { ...NONE, late: 1, new_track: 1 });
  });

  it("any arrival order releases every packet once, in order, bounded (fuzz)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 60 }), (order) => {
        const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
        const out: (number | string)[] = [];
        let now = 0;
        for (const s of order) {
          j.push(pkt(s), now);
          out.push(...seqs(j.pop(now)));
          assert.ok(j.size <= 9);
          now += 7;
        }
        out.push(...seqs(j.pop(now + 1000)));
        const released = out.filter((x): x is number => typeof x === "number");
        assert.deepEqual(
          released,
          [...released].sort((a, b) => a - b),
        );
        assert.equal(new Set(released).size, released.length);
      }),
      { numRuns: 2000 },
    );
  });

  it("packets of several tracks in any order: generations never go back, each in order (fuzz)", () => {
    const arrival = fc.record({
      generation: fc.integer({ min: 0, max: 3 }),
      offset: fc.integer({ min: 0, max: 40 }),
    });
    fc.assert(
      fc.property(fc.array(arrival, { minLength: 1, maxLength: 80 }), (order) => {
        const j = new JitterBuffer({ maxPackets: 8, waitMs: 30 });
        const released: { generation: number; sequence: number }[] = [];
        const take = (r: Released[]) => {
          for (const x of r) if (x.kind === "packet") released.push(x.packet);
        };
        let now = 0;
        for (const { generation, offset } of order) {
          // Each track its own numbering: 10,000 apart, some across the 16-bit wrap.
          j.push(pkt((65500 + generation * 10_000 + offset) & 0xffff, generation), now);
          take(j.pop(now));
          assert.ok(j.size <= 9);
          now += 7;
        }
        take(j.pop(now + 1000));
        const key = (p: { generation: number; sequence: number }) =>
          p.generation * 100 + ((p.sequence - 65500 - p.generation * 10_000) & 0xffff);
        const keys = released.map(key);
        assert.deepEqual(
          keys,
          [...keys].sort((a, b) => a - b),
        );
        assert.equal(new Set(keys).size, keys.length);
      }),
      { numRuns: 2000 },
    );
  });
});
