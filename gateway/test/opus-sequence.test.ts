import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_SEQUENCE_PACKETS,
  packFrames,
  packSequence,
  unpackSequence,
} from "../src/audio/opus-protocol.ts";

describe("Opus sequence frames (several packets, one decode job)", () => {
  it("unpacks to the packets it was packed from, empty ones included", () => {
    const packets = [Buffer.from([1, 2, 3]), Buffer.alloc(0), Buffer.alloc(300, 7)];
    assert.deepEqual(unpackSequence(packSequence(packets)), packets);
  });

  it("packs no packets into a frame of one zero byte", () => {
    assert.deepEqual(packSequence([]), Buffer.from([0]));
    assert.deepEqual(unpackSequence(Buffer.from([0])), []);
  });

  it("refuses a frame whose lengths run past its end", () => {
    const frame = packSequence([Buffer.from([1, 2, 3])]);
    assert.equal(unpackSequence(frame.subarray(0, frame.length - 1)), undefined);
    assert.equal(unpackSequence(Buffer.from([2, 1, 0])), undefined);
    assert.equal(unpackSequence(Buffer.alloc(0)), undefined);
  });

  it("refuses a frame with bytes after its last packet", () => {
    assert.equal(
      unpackSequence(Buffer.concat([packSequence([Buffer.from([1])]), Buffer.from([9])])),
      undefined,
    );
  });

  it("refuses to pack more packets than its count byte holds, or a packet over 65,535 bytes", () => {
    assert.throws(() => packSequence(new Array(MAX_SEQUENCE_PACKETS + 1).fill(Buffer.from([1]))), RangeError);
    assert.throws(() => packSequence([Buffer.alloc(0x10000)]), RangeError);
  });
});

describe("Packed frames (a batch to a worker, its results back)", () => {
  it("puts frame i at data[offsets[i]..offsets[i+1]], empty frames included", () => {
    const frames = [Buffer.from([1, 2, 3]), Buffer.alloc(0), Buffer.from([4])];
    const { data, offsets } = packFrames(frames);
    assert.deepEqual([...offsets], [0, 3, 3, 4]);
    const bytes = new Uint8Array(data);
    frames.forEach((f, i) => {
      assert.deepEqual(Buffer.from(bytes.subarray(offsets[i], offsets[i + 1])), f);
    });
  });

  it("packs nothing into an empty buffer with the one offset 0", () => {
    const { data, offsets } = packFrames([]);
    assert.equal(data.byteLength, 0);
    assert.deepEqual([...offsets], [0]);
  });
});
