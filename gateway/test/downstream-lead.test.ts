/**
 * The tts-start lead on an injected clock: the first frame of a turn goes out only
 * TTS_START_LEAD_MS after `tts start` (firmware plays audio only once Speaking), an
 * abort ends the turn so later agent audio is not played, and a closed downstream sends
 * nothing more (real Opus worker).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { GatewayMetrics } from "../src/ops/metrics.ts";
import { DOWN_FRAME_BYTES } from "../src/protocol/audio-format.ts";
import { newSessionKey } from "../src/protocol/crypto.ts";
import { Downstream, TTS_START_LEAD_MS } from "../src/session/downstream.ts";
import { ManualTimers } from "./support/manual-timers.ts";
import { eventually } from "./support/stack.ts";

describe("downstream on an injected clock", () => {
  let pool: OpusPool;
  let metrics: GatewayMetrics;
  before(async () => {
    pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
    metrics = new GatewayMetrics(1);
  });
  after(async () => {
    metrics.stop();
    await pool.shutdown();
  });

  /** `startAt`: where the clock stands when the downstream starts. */
  const turn = (startAt = 0) => {
    const timers = new ManualTimers();
    timers.advance(startAt);
    const sent: Buffer[] = [];
    const tts: string[] = [];
    const encoder = pool.openEncoder(24000);
    /** Each encode handed to the pool, settled either way, so a test can await it. */
    const encodes: Promise<unknown>[] = [];
    const down = new Downstream({
      pool: {
        encode: (stream, pcm) => {
          const out = pool.encode(stream, pcm);
          encodes.push(
            out.then(
              () => {},
              () => {},
            ),
          );
          return out;
        },
      },
      encoder,
      key: newSessionKey(),
      connectionId: 7,
      metrics,
      remote: () => ({ address: "127.0.0.1", port: 9 }),
      sendUdp: (d) => sent.push(d),
      sendTts: (state) => tts.push(state),
      now: timers.now,
      startTimer: timers.start,
    });
    const close = () => {
      down.close();
      pool.close(encoder);
    };
    return { timers, sent, tts, down, close, encodes };
  };

  it("the first frame of a turn waits the tts-start lead, not a millisecond less", async () => {
    const t = turn();
    try {
      t.down.speechStart();
      t.down.audio(Buffer.alloc(DOWN_FRAME_BYTES, 1));
      assert.deepEqual(t.tts, ["start"]);
      t.timers.advance(TTS_START_LEAD_MS - 1);
      // Absence cannot be awaited: give a would-be encode (~1 ms in the worker) ample time.
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(t.sent.length, 0);
      t.timers.advance(1);
      await eventually(() => t.sent.length === 1, 2000, "the first frame after the lead");
    } finally {
      t.close();
    }
  });

  it("after an abort, agent audio still arriving is not played until a new turn", async () => {
    const t = turn();
    try {
      t.down.speechStart();
      t.down.abort();
      assert.deepEqual(t.tts, ["start", "stop"]);
      t.down.audio(Buffer.alloc(DOWN_FRAME_BYTES, 1));
      t.timers.advance(TTS_START_LEAD_MS);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(t.sent.length, 0);
      assert.deepEqual(t.tts, ["start", "stop"]);
    } finally {
      t.close();
    }
  });

  it("stamps each packet with the milliseconds since the downstream started, on its clock", async () => {
    const t = turn(5000);
    try {
      t.down.speechStart();
      t.timers.advance(TTS_START_LEAD_MS);
      t.down.audio(Buffer.alloc(DOWN_FRAME_BYTES, 1));
      await eventually(() => t.sent.length === 1, 2000, "the first frame");
      // The header (device-protocol.md 3.2) travels in the clear: timestamp at bytes 8..11.
      assert.equal((t.sent[0] as Buffer).readUInt32BE(8), TTS_START_LEAD_MS);
    } finally {
      t.close();
    }
  });

  it("no two packets share an AES-CTR counter block, in a burst or with the device's own (timestamp 0)", async () => {
    const t = turn();
    try {
      t.down.speechStart();
      for (let i = 0; i < 4; i++) t.down.audio(Buffer.alloc(DOWN_FRAME_BYTES, i + 1));
      // All four go out at one instant of the clock: the lead's end.
      t.timers.advance(TTS_START_LEAD_MS);
      await eventually(() => t.sent.length === 4, 2000, "the four frames");
      // Each packet's counter blocks: its 16-byte header (device-protocol.md 3.3), then that
      // plus one for each further 16 bytes of its payload, as a 128-bit number.
      const blocks = (header: Buffer, payloadBytes: number) =>
        Array.from(
          { length: Math.ceil(payloadBytes / 16) },
          (_, i) => header.readBigUInt64BE(0) * 2n ** 64n + header.readBigUInt64BE(8) + BigInt(i),
        );
      const ours = t.sent.map((d) => blocks(d.subarray(0, 16), d.length - 16));
      assert.deepEqual(
        t.sent.map((d) => d.readUInt32BE(8)),
        [TTS_START_LEAD_MS, TTS_START_LEAD_MS + 1, TTS_START_LEAD_MS + 2, TTS_START_LEAD_MS + 3],
      );
      // The device's packets of the same lengths and sequences, timestamp 0 (no AEC).
      const devices = t.sent.map((d) => {
        const header = Buffer.from(d.subarray(0, 16));
        header.writeUInt32BE(0, 8);
        return blocks(header, d.length - 16);
      });
      // (The device's own packets share blocks among themselves: its firmware, not ours.)
      const own = ours.flat();
      assert.equal(new Set(own).size, own.length, "a counter block of ours used twice");
      const theirs = new Set(devices.flat());
      assert.deepEqual(
        own.filter((b) => theirs.has(b)),
        [],
        "a counter block of ours is one of the device's",
      );
    } finally {
      t.close();
    }
  });

  it("a close while the turn's last frame is encoding sends no tts stop when the encode settles", async () => {
    const t = turn();
    try {
      t.down.speechStart();
      t.timers.advance(TTS_START_LEAD_MS);
      t.down.audio(Buffer.alloc(DOWN_FRAME_BYTES, 1));
      t.down.speechEnd();
      assert.equal(t.encodes.length, 1, "the frame is encoding");
      t.down.close();
      // Resumes a step after the downstream's own handler of the encode has run.
      await Promise.all(t.encodes);
      assert.deepEqual(t.tts, ["start"]);
      assert.equal(t.sent.length, 0);
    } finally {
      t.close();
    }
  });
});
