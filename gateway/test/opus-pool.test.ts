import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rms, SpeechSignal } from "../../tools/sim/speech-signal.ts";
import { OpusPool, type OpusPoolOptions, type OpusStream } from "../src/audio/opus-pool.ts";
import { runModuleInChild } from "./support/child-module.ts";

const WORKERS_ONLY: OpusPoolOptions = { size: 2, complexity: 5, bitrate: 24000 };
/** Every stream these tests open fits under the cap: all of them coded on the main thread. */
const ALL_INLINE: OpusPoolOptions = { ...WORKERS_ONLY, inlineStreams: 16 };

/** The pool of the enclosing describe's tests: started before them, shut down after them. */
function poolFor(options: OpusPoolOptions): () => OpusPool {
  let pool: OpusPool | undefined;
  before(async () => {
    pool = await OpusPool.start(options);
  });
  after(async () => {
    await pool?.shutdown();
  });
  return () => {
    if (!pool) throw new Error("the pool is started before the tests");
    return pool;
  };
}

/** `count` packets of 24 kHz speech, `samples` each, from the encoder `enc`. */
async function speechPackets(
  pool: OpusPool,
  enc: OpusStream,
  o: { seed: number; count: number; samples: number },
): Promise<Buffer[]> {
  const signal = new SpeechSignal({ sampleRate: 24000, seed: o.seed });
  const packets: Buffer[] = [];
  for (let i = 0; i < o.count; i++) packets.push(await pool.encode(enc, signal.next(o.samples)));
  return packets;
}

for (const [where, options] of [
  ["in worker threads", WORKERS_ONLY],
  ["on the main thread", ALL_INLINE],
] as const)
  describe(`OpusPool (real libopus ${where})`, () => {
    const pool = poolFor(options);

    it("encodes a 60 ms 24 kHz frame and decodes it back to 1440 samples", async () => {
      const enc = pool().openEncoder(24000);
      const dec = pool().openDecoder(24000);
      for (const s of [enc, dec]) assert.equal(s.worker === -1, options === ALL_INLINE, `coded ${where}`);
      const signal = new SpeechSignal({ sampleRate: 24000, seed: 1 });
      let lastPcm: Buffer = Buffer.alloc(0);
      for (let i = 0; i < 10; i++) {
        const opus = await pool().encode(enc, signal.next(1440));
        assert.ok(opus.length > 0 && opus.length < 400);
        lastPcm = await pool().decode(dec, opus);
        assert.equal(lastPcm.length, 1440 * 2);
      }
      assert.ok(rms(lastPcm) > 100, "decoded speech is not silence");
      pool().close(enc);
      pool().close(dec);
    });

    it("rejects a frame libopus cannot decode, and the stream keeps working", async () => {
      const dec = pool().openDecoder(16000);
      const enc = pool().openEncoder(16000);
      await assert.rejects(pool().decode(dec, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
      const opus = await pool().encode(enc, new SpeechSignal({ sampleRate: 16000, seed: 2 }).next(960));
      assert.equal((await pool().decode(dec, opus)).length, 960 * 2);
      pool().close(dec);
      pool().close(enc);
    });

    it("decodes a sequence of packets in one job to the PCM their decodes one by one give", async () => {
      const enc = pool().openEncoder(24000);
      const packets = await speechPackets(pool(), enc, { seed: 3, count: 6, samples: 480 });
      const oneByOne = pool().openDecoder(24000);
      const each: Buffer[] = [];
      for (const p of packets) each.push(await pool().decode(oneByOne, p));
      const together = pool().openDecoder(24000);
      const first = await pool().decodeSequence(together, packets.slice(0, 1));
      const rest = await pool().decodeSequence(together, packets.slice(1));
      assert.deepEqual(Buffer.concat([first.pcm, rest.pcm]), Buffer.concat(each));
      assert.equal(first.undecodable + rest.undecodable, 0);
      for (const s of [enc, oneByOne, together]) pool().close(s);
    });

    it("conceals an empty packet in a sequence with one packet's worth of audio", async () => {
      const enc = pool().openEncoder(24000);
      const dec = pool().openDecoder(24000);
      const signal = new SpeechSignal({ sampleRate: 24000, seed: 4 });
      const a = await pool().encode(enc, signal.next(480));
      const b = await pool().encode(enc, signal.next(480));
      const out = await pool().decodeSequence(dec, [a, Buffer.alloc(0), b]);
      assert.equal(out.pcm.length, 3 * 480 * 2);
      assert.equal(out.undecodable, 0);
      pool().close(enc);
      pool().close(dec);
    });

    it("conceals and counts a packet of a sequence that libopus cannot decode", async () => {
      const enc = pool().openEncoder(24000);
      const dec = pool().openDecoder(24000);
      const signal = new SpeechSignal({ sampleRate: 24000, seed: 5 });
      const a = await pool().encode(enc, signal.next(480));
      const out = await pool().decodeSequence(dec, [a, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])]);
      assert.equal(out.undecodable, 1);
      assert.equal(out.pcm.length, 2 * 480 * 2);
      pool().close(enc);
      pool().close(dec);
    });

    it("refuses a sequence for an encoder", async () => {
      const enc = pool().openEncoder(24000);
      await assert.rejects(pool().decodeSequence(enc, [Buffer.from([0xf8, 0xff, 0xfe])]), /for decoders/);
      pool().close(enc);
    });

    it("counts the time spent coding as the utilization of the thread that coded it", async () => {
      pool().sampleUtilization(); // closes the window of the tests before
      const enc = pool().openEncoder(24000);
      await speechPackets(pool(), enc, { seed: 6, count: 20, samples: 1440 });
      const workers = pool()
        .sampleUtilization()
        .reduce((sum, w) => sum + w.utilization, 0);
      const [coder, idle] =
        options === ALL_INLINE ? [pool().inlineUtilization, workers] : [workers, pool().inlineUtilization];
      assert.ok(coder > 0 && coder <= 1, `utilization ${where} ${coder}`);
      assert.equal(idle, 0, "the other place coded nothing");
      pool().close(enc);
    });

    it("fails frames of a closed stream", async () => {
      const dec = pool().openDecoder(16000);
      pool().close(dec);
      await assert.rejects(pool().decode(dec, Buffer.from([0x08])), /closed/);
    });
  });

describe("OpusPool placing streams", () => {
  const pool = poolFor({ ...WORKERS_ONLY, inlineStreams: 2 });

  it("codes the first streams of each role on the main thread, up to the cap, and the rest in workers", () => {
    const decoders = [pool().openDecoder(16000), pool().openDecoder(16000), pool().openDecoder(16000)];
    const encoders = [pool().openEncoder(24000), pool().openEncoder(24000), pool().openEncoder(24000)];
    const inWorker = (s: OpusStream) => s.worker >= 0;
    assert.deepEqual(decoders.map(inWorker), [false, false, true]);
    assert.deepEqual(encoders.map(inWorker), [false, false, true]);
    assert.equal(pool().openStreams, 6);
    for (const s of [...decoders, ...encoders]) pool().close(s);
    assert.equal(pool().openStreams, 0);
  });

  it("gives a closed main-thread stream's place to the next stream opened", () => {
    const a = pool().openDecoder(16000);
    const b = pool().openDecoder(16000);
    pool().close(a);
    const c = pool().openDecoder(16000);
    assert.equal(c.worker, -1);
    pool().close(b);
    pool().close(c);
  });

  it("a main-thread stream and a worker stream decode the same packets to the same PCM", async () => {
    const enc = pool().openEncoder(24000);
    const packets = await speechPackets(pool(), enc, { seed: 6, count: 5, samples: 1440 });
    const inline = pool().openDecoder(24000);
    const spare = pool().openDecoder(24000);
    const inWorker = pool().openDecoder(24000);
    assert.equal(inline.worker, -1);
    assert.ok(inWorker.worker >= 0);
    for (const p of packets)
      assert.deepEqual(await pool().decode(inline, p), await pool().decode(inWorker, p));
    for (const s of [enc, inline, spare, inWorker]) pool().close(s);
  });

  it("refuses at open a stream at a rate Opus does not code, and keeps its place free", () => {
    assert.throws(() => pool().openEncoder(44100), /44100 Hz is not an Opus rate/);
    assert.throws(() => pool().openDecoder(22050), /not an Opus rate/);
    const a = pool().openEncoder(24000);
    const b = pool().openEncoder(24000);
    assert.deepEqual([a.worker, b.worker], [-1, -1]);
    assert.equal(pool().openStreams, 2);
    pool().close(a);
    pool().close(b);
  });

  it("fails a main-thread stream's frames still queued when it closes", async () => {
    const dec = pool().openDecoder(16000);
    assert.equal(dec.worker, -1);
    const queued = pool().decode(dec, Buffer.from([0x08]));
    pool().close(dec);
    await assert.rejects(queued, /closed/);
  });
});

describe("OpusPool spreading streams over its workers", () => {
  const pool = poolFor(WORKERS_ONLY);

  it("refuses at open a stream at a rate Opus does not code, so no worker is made to fail on it", async () => {
    assert.throws(() => pool().openEncoder(44100), /not an Opus rate/);
    const enc = pool().openEncoder(24000);
    await pool().encode(enc, Buffer.alloc(1440 * 2));
    assert.deepEqual(
      pool()
        .stats()
        .map((w) => w.restarts),
      [0, 0],
    );
    pool().close(enc);
  });

  it("pins streams to the least-loaded worker at open", () => {
    assert.equal(pool().allAlive, true);
    const a = pool().openDecoder(16000);
    const b = pool().openDecoder(16000);
    assert.notEqual(a.worker, b.worker);
    pool().close(a);
    pool().close(b);
    assert.equal(pool().openStreams, 0);
  });

  it("spreads encoders over the workers, and decoders too (not all encoders on one)", () => {
    const opened = [];
    for (let i = 0; i < 4; i++) opened.push(pool().openDecoder(16000), pool().openEncoder(24000));
    const encoders = opened.filter((s) => s.role === "encoder").map((s) => s.worker);
    const decoders = opened.filter((s) => s.role === "decoder").map((s) => s.worker);
    assert.deepEqual(encoders.sort(), [0, 0, 1, 1]);
    assert.deepEqual(decoders.sort(), [0, 0, 1, 1]);
    for (const s of opened) pool().close(s);
  });
});

describe("OpusPool shutting down", () => {
  it("stops workers still making codecs without aborting the process", async () => {
    // Terminating a worker half-way through making a libopus encoder threw from native code
    // during the thread's teardown, a fatal error for the whole process (4 runs of 4 with
    // this loop, before the workers were asked to stop). In a child, so an abort shows.
    const pool = new URL("../src/audio/opus-pool.ts", import.meta.url).href;
    const body = `import { OpusPool } from ${JSON.stringify(pool)};
for (let round = 0; round < 3; round++) {
  const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  for (let i = 0; i < 200; i++) pool.openEncoder(24000);
  await pool.shutdown();
}`;
    const { code, signal, stderr } = await runModuleInChild(body);
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
  });
});

// Bounded: frames left waiting on a dead worker would otherwise hang the run, not fail it.
describe("OpusPool when a worker dies", { timeout: 10_000 }, () => {
  const pool = poolFor(WORKERS_ONLY);
  const silence = Buffer.alloc(1440 * 2);

  it("fails or answers every frame sent to it, none left waiting", async () => {
    const enc = pool().openEncoder(24000);
    const sent = [pool().encode(enc, silence), pool().encode(enc, silence)];
    await pool().killWorkerForTest(enc.worker);
    for (const outcome of await Promise.allSettled(sent)) {
      if (outcome.status === "rejected") assert.match(String(outcome.reason), /opus worker exited/);
    }
    pool().close(enc);
  });

  it("is replaced, and the streams pinned to it code again there with fresh state", async () => {
    const enc = pool().openEncoder(24000);
    const dec = pool().openDecoder(24000);
    await pool().decode(dec, await pool().encode(enc, silence));
    const killed = enc.worker;
    const before = pool().stats();
    await pool().killWorkerForTest(killed);
    const after = pool().stats();
    for (const [i, w] of after.entries()) {
      assert.equal(w.restarts, (before[i]?.restarts ?? 0) + (i === killed ? 1 : 0), `worker ${i}'s restarts`);
      assert.equal(w.streams, before[i]?.streams, `worker ${i} keeps its streams`);
    }
    const opus = await pool().encode(enc, silence);
    assert.equal((await pool().decode(dec, opus)).length, 1440 * 2);
    assert.equal(pool().allAlive, true, "the replacement said ready before it answered");
    pool().close(enc);
    pool().close(dec);
  });
});
