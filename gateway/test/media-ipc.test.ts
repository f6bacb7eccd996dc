/**
 * The media process's IPC framing: round trips, malformed and random input. The Go end of
 * the framing has its own tests (media/internal/ipc); the audio timing on either side of
 * it, media-rtp.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeFromMedia,
  encodeToMedia,
  FrameSplitter,
  FromMediaType,
  MAX_FRAME,
  ToMediaType,
} from "../src/agent/livekit/media/ipc-codec.ts";

/** Builds a media-to-gateway frame the way ipc.go does. */
function mediaFrame(type: number, session: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(9);
  head.writeUInt32LE(5 + body.length, 0);
  head.writeUInt8(type, 4);
  head.writeUInt32LE(session, 5);
  return Buffer.concat([head, body]);
}
const str = (s: string) => {
  const b = Buffer.from(s);
  const l = Buffer.alloc(2);
  l.writeUInt16LE(b.length);
  return Buffer.concat([l, b]);
};
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

function splitOne(frame: Buffer) {
  const { frames, corrupt } = new FrameSplitter().push(frame);
  assert.equal(corrupt, false);
  assert.equal(frames.length, 1);
  const f = frames[0] as { type: number; session: number; body: Buffer };
  return decodeFromMedia(f.type, f.session, f.body);
}

describe("IPC framing", () => {
  it("an Opus frame for the media process carries timestamp, duration and the packet as raw bytes", () => {
    const opus = Buffer.from([0x78, 1, 2, 3]);
    const f = encodeToMedia({ kind: "opus", session: 7, timestamp: 0xfffffff0, durationMs: 60, opus });
    assert.equal(f.readUInt32LE(0), f.length - 4);
    assert.equal(f[4], 0x02);
    assert.equal(f.readUInt32LE(5), 7);
    assert.equal(f.readUInt32LE(9), 0xfffffff0);
    assert.equal(f.readUInt16LE(13), 60);
    assert.deepEqual(f.subarray(15), opus);
  });

  it("a join frame carries URL and token as length-prefixed strings", () => {
    const f = encodeToMedia({ kind: "join", session: 1, url: "ws://127.0.0.1:1", token: "t.o.k" });
    assert.equal(f.readUInt16LE(9), 16);
    assert.equal(f.subarray(11, 27).toString(), "ws://127.0.0.1:1");
    assert.equal(f.readUInt16LE(27), 5);
  });

  it("a ping carries its number on session 0, and the pong that answers decodes to it", () => {
    const ping = encodeToMedia({ kind: "ping", session: 0, seq: 0xfffffffe });
    assert.equal(ping[4], ToMediaType.ping);
    assert.equal(ping.readUInt32LE(5), 0);
    assert.equal(ping.readUInt32LE(9), 0xfffffffe);
    assert.deepEqual(splitOne(mediaFrame(FromMediaType.pong, 0, u32(0xfffffffe))), {
      kind: "pong",
      session: 0,
      seq: 0xfffffffe,
    });
  });

  it("a frame over the size limit is refused, not sent", () => {
    assert.throws(
      () => encodeToMedia({ kind: "data", session: 1, topic: "x", payload: Buffer.alloc(MAX_FRAME) }),
      RangeError,
    );
  });

  it("agent RTP decodes to the track's generation, sequence, timestamp and payload", () => {
    const m = splitOne(
      mediaFrame(FromMediaType.agent_rtp, 3, u16(65534), u16(65535), u32(123456), Buffer.from([9, 8])),
    );
    assert.deepEqual(m, {
      kind: "agent_rtp",
      session: 3,
      generation: 65534,
      sequence: 65535,
      timestamp: 123456,
      payload: Buffer.from([9, 8]),
    });
  });

  it("agent RTP with its fixed fields and no payload decodes; one byte less is short", () => {
    const m = splitOne(mediaFrame(FromMediaType.agent_rtp, 3, u16(1), u16(2), u32(3)));
    assert.equal("kind" in m && m.kind === "agent_rtp" && m.payload.length, 0);
    assert.deepEqual(
      splitOne(mediaFrame(FromMediaType.agent_rtp, 3, u16(1), u16(2), u16(3), Buffer.from([0]))),
      {
        error: "short_body",
      },
    );
  });

  const textFrame = (end: number, text: string) => {
    const attrs = Buffer.concat([u16(1), str("lk.transcription_final"), str("true")]);
    const parts = [
      str("s1"),
      str("lk.transcription"),
      str("agent"),
      attrs,
      Buffer.from([end]),
      Buffer.from(text),
    ];
    return mediaFrame(FromMediaType.text, 2, ...parts);
  };

  it("a text chunk decodes with its stream, topic, sender, attributes and text", () => {
    assert.deepEqual(splitOne(textFrame(0, "héllo")), {
      kind: "text",
      session: 2,
      streamId: "s1",
      topic: "lk.transcription",
      from: "agent",
      attributes: { "lk.transcription_final": "true" },
      done: false,
      aborted: false,
      text: "héllo",
    });
  });

  it("a text stream's last frame says whether it ended whole or failed", () => {
    assert.deepEqual(
      [1, 2].map((end) => {
        const m = splitOne(textFrame(end, ""));
        return "kind" in m && m.kind === "text" ? { done: m.done, aborted: m.aborted } : m;
      }),
      [
        { done: true, aborted: false },
        { done: true, aborted: true },
      ],
    );
  });

  it("a text frame's end of any other value is a bad field, not a record", () => {
    assert.deepEqual(splitOne(textFrame(3, "x")), { error: "bad_field" });
  });

  it("a participant's kind maps from LiveKit's numbers, unknown ones to other", () => {
    const agent = splitOne(
      mediaFrame(FromMediaType.participant_joined, 1, str("a"), Buffer.from([4]), u16(0)),
    );
    assert.equal("participantKind" in agent && agent.participantKind, "agent");
    const odd = splitOne(mediaFrame(FromMediaType.participant_joined, 1, str("b"), Buffer.from([9]), u16(0)));
    assert.equal("participantKind" in odd && odd.participantKind, "other");
  });

  it("a body shorter than its fields say is an error, not a record", () => {
    assert.deepEqual(splitOne(mediaFrame(FromMediaType.joined, 1, u16(10), Buffer.from("abc"))), {
      error: "short_body",
    });
    assert.deepEqual(splitOne(mediaFrame(FromMediaType.agent_rtp, 1, u16(1), u16(2))), {
      error: "short_body",
    });
  });

  it("an unknown type is an error", () => {
    assert.deepEqual(splitOne(mediaFrame(0x7f, 1)), { error: "unknown_type" });
  });

  it("frames split across reads at every byte come out whole and in order", () => {
    const a = mediaFrame(FromMediaType.joined, 1, str("me"));
    const b = mediaFrame(FromMediaType.agent_rtp, 1, u16(4), u16(5), u32(6), Buffer.alloc(100, 1));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const s = new FrameSplitter();
      const got = [...s.push(all.subarray(0, cut)).frames, ...s.push(all.subarray(cut)).frames];
      assert.deepEqual(
        got.map((f) => f.type),
        [FromMediaType.joined, FromMediaType.agent_rtp],
      );
      assert.equal(s.buffered, 0);
    }
  });

  it("a length out of range marks the stream corrupt", () => {
    const bad = Buffer.alloc(9);
    bad.writeUInt32LE(MAX_FRAME, 0);
    assert.equal(new FrameSplitter().push(bad).corrupt, true);
    const tiny = Buffer.alloc(9);
    tiny.writeUInt32LE(2, 0);
    assert.equal(new FrameSplitter().push(tiny).corrupt, true);
  });

  it("the largest 32-bit lengths are corrupt too (in Go, length + 4 wrapped past the bound)", () => {
    for (const n of [0xfffffffc, 0xffffffff]) {
      const bad = Buffer.alloc(9);
      bad.writeUInt32LE(n, 0);
      assert.equal(new FrameSplitter().push(bad).corrupt, true, n.toString(16));
    }
  });

  it("random bytes never throw: frames, errors or corrupt, nothing else (fuzz)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (chunks) => {
        const s = new FrameSplitter();
        for (const c of chunks) {
          const { frames, corrupt } = s.push(Buffer.from(c));
          for (const f of frames) {
            const m = decodeFromMedia(f.type, f.session, f.body);
            assert.ok("error" in m || typeof m.kind === "string");
          }
          if (corrupt) return;
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it("valid frames with random bodies decode or report an error, never throw (fuzz)", () => {
    const types = Object.values(FromMediaType);
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 200 }), (type, body) => {
        const m = splitOne(mediaFrame(type, 1, Buffer.from(body)));
        assert.ok("error" in m || m.session === 1);
      }),
      { numRuns: 20_000 },
    );
  });
});
