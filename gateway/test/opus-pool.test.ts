import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rms, SpeechSignal } from "../../tools/sim/speech-signal.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";

describe("OpusPool (real libopus in worker threads)", () => {
  let pool: OpusPool;
  before(async () => {
    pool = await OpusPool.start({ size: 2, complexity: 5, bitrate: 24000 });
  });
  after(async () => {
    await pool.shutdown();
  });

  it("encodes a 60 ms 24 kHz frame and decodes it back to 1440 samples", async () => {
    const enc = pool.openEncoder(24000);
    const dec = pool.openDecoder(24000);
    const signal = new SpeechSignal({ sampleRate: 24000, seed: 1 });
    let lastPcm: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 10; i++) {
      const opus = await pool.encode(enc, signal.next(1440));
      assert.ok(opus.length > 0 && opus.length < 400);
      lastPcm = await pool.decode(dec, opus);
      assert.equal(lastPcm.length, 1440 * 2);
    }
    assert.ok(rms(lastPcm) > 100, "decoded speech is not silence");
    pool.close(enc);
    pool.close(dec);
  });

  it("pins streams to the least-loaded worker at open", () => {
    assert.equal(pool.allAlive, true);
    const a = pool.openDecoder(16000);
    const b = pool.openDecoder(16000);
    assert.notEqual(a.worker, b.worker);
    pool.close(a);
    pool.close(b);
    assert.equal(pool.openStreams, 0);
  });

  it("rejects a frame libopus cannot decode, and the stream keeps working", async () => {
    const dec = pool.openDecoder(16000);
    const enc = pool.openEncoder(16000);
    await assert.rejects(pool.decode(dec, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
    const opus = await pool.encode(enc, new SpeechSignal({ sampleRate: 16000, seed: 2 }).next(960));
    assert.equal((await pool.decode(dec, opus)).length, 960 * 2);
    pool.close(dec);
    pool.close(enc);
  });

  it("spreads encoders over the workers, and decoders too (not all encoders on one)", () => {
    const opened = [];
    for (let i = 0; i < 4; i++) opened.push(pool.openDecoder(16000), pool.openEncoder(24000));
    const encoders = opened.filter((s) => s.role === "encoder").map((s) => s.worker);
    const decoders = opened.filter((s) => s.role === "decoder").map((s) => s.worker);
    assert.deepEqual(encoders.sort(), [0, 0, 1, 1]);
    assert.deepEqual(decoders.sort(), [0, 0, 1, 1]);
    for (const s of opened) pool.close(s);
  });

  it("fails frames of a closed stream", async () => {
    const dec = pool.openDecoder(16000);
    pool.close(dec);
    await assert.rejects(pool.decode(dec, Buffer.from([0x08])), /closed/);
  });
});
