import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PcmFramer } from "../src/audio/framer.ts";
import { resamplePcm16 } from "../src/audio/resample.ts";

describe("PcmFramer", () => {
  it("cuts any chunking into whole 2880-byte frames and keeps the remainder", () => {
    const f = new PcmFramer(2880);
    assert.equal(f.push(Buffer.alloc(1000)).length, 0);
    const frames = f.push(Buffer.alloc(5000));
    assert.equal(frames.length, 2);
    assert.equal(f.pendingBytes, 6000 - 5760);
    const tail = f.flush();
    assert.equal(tail?.length, 2880);
    assert.equal(f.pendingBytes, 0);
  });
});

describe("resamplePcm16", () => {
  it("turns a 60 ms 16 kHz frame into a 60 ms 24 kHz frame", () => {
    assert.equal(resamplePcm16(Buffer.alloc(1920), 16000, 24000).length, 2880);
  });
});
