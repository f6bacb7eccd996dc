import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import { helloReply, MAX_DEVICE_MESSAGE_BYTES, parseDeviceMessage } from "../src/protocol/messages.ts";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const HELLO = firmwareHello();

describe("device messages", () => {
  it("accepts the hello current firmware sends", () => {
    const r = parseDeviceMessage(json(HELLO));
    assert.ok(r.ok);
    assert.deepEqual(r.message, {
      type: "hello",
      audio: { sampleRate: 16000, channels: 1, frameDurationMs: 60 },
      features: { mcp: true, aec: false },
    });
  });

  it("refuses hello versions other than 3", () => {
    const r = parseDeviceMessage(json({ ...HELLO, version: 2 }));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, "hello_version");
  });

  it("refuses, without throwing, a version or type nested as deep as 8 KiB allows", () => {
    const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    const cases: [string, string][] = [
      [`{"type":"hello","version":${nested(4070)}}`, "hello_version"],
      [`{"type":${nested(4090)}}`, "unknown_type"],
    ];
    for (const [raw, reason] of cases) {
      assert.ok(Buffer.byteLength(raw) <= MAX_DEVICE_MESSAGE_BYTES);
      const r = parseDeviceMessage(Buffer.from(raw));
      assert.equal(!r.ok && r.reason, reason);
      assert.ok(!r.ok && r.detail.length < 80, "a short detail");
    }
  });

  it("refuses a hello for another transport or codec", () => {
    for (const bad of [
      { ...HELLO, transport: "websocket" },
      { ...HELLO, audio_params: { format: "pcm" } },
    ]) {
      const r = parseDeviceMessage(json(bad));
      assert.equal(!r.ok && r.reason, "bad_hello");
    }
  });

  it("parses listen, abort, mcp and goodbye with their session id", () => {
    const sid = "1-abcd1234-0123456789abcdef";
    const listen = parseDeviceMessage(
      json({ session_id: sid, type: "listen", state: "start", mode: "manual" }),
    );
    assert.deepEqual(listen.ok && listen.message, {
      type: "listen",
      sessionId: sid,
      state: "start",
      mode: "manual",
      text: undefined,
    });
    const abort = parseDeviceMessage(json({ session_id: sid, type: "abort", reason: "wake_word_detected" }));
    assert.deepEqual(abort.ok && abort.message, {
      type: "abort",
      sessionId: sid,
      reason: "wake_word_detected",
    });
    const mcp = parseDeviceMessage(
      json({ session_id: sid, type: "mcp", payload: { jsonrpc: "2.0", id: 1, result: {} } }),
    );
    assert.equal(mcp.ok && mcp.message.type, "mcp");
    const bye = parseDeviceMessage(json({ session_id: sid, type: "goodbye" }));
    assert.deepEqual(bye.ok && bye.message, { type: "goodbye", sessionId: sid });
  });

  it("names the reason for every rejection", () => {
    const cases: [Buffer, string][] = [
      [Buffer.from("{not json"), "malformed_json"],
      [json([1, 2]), "not_object"],
      [json({ type: "iot", session_id: "x" }), "unknown_type"],
      [json({ type: "listen", state: "sing" }), "bad_field"],
      [json({ type: "mcp", payload: "text" }), "bad_field"],
      [Buffer.alloc(MAX_DEVICE_MESSAGE_BYTES + 1, 0x20), "oversized"],
    ];
    for (const [payload, reason] of cases) {
      const r = parseDeviceMessage(payload);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.reason, reason);
    }
  });
});

describe("server messages", () => {
  it("the hello reply has every field firmware requires, key and nonce as 32 hex chars", () => {
    const reply = helloReply({
      sessionId: "s",
      udpServer: "203.0.113.7",
      udpPort: 8881,
      key: Buffer.alloc(16, 0xab),
      nonce: Buffer.alloc(16, 1),
    });
    assert.equal(reply.type, "hello");
    assert.equal(reply.transport, "udp");
    const udp = reply.udp as Record<string, unknown>;
    assert.equal(udp.server, "203.0.113.7");
    assert.equal(udp.port, 8881);
    assert.match(String(udp.key), /^[0-9a-f]{32}$/);
    assert.match(String(udp.nonce), /^[0-9a-f]{32}$/);
    assert.deepEqual(reply.audio_params, {
      format: "opus",
      sample_rate: 24000,
      channels: 1,
      frame_duration: 60,
    });
  });
});
