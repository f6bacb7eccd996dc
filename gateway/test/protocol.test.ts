import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { describe, it } from "node:test";
import { openAudioPacket, sealAudioPacket } from "../src/protocol/audio-packet.ts";
import { parseDeviceClientId } from "../src/protocol/client-id.ts";
import { aesCtr } from "../src/protocol/crypto.ts";
import { checkOpusPacket } from "../src/protocol/opus-packet.ts";
import { newBootId, newSessionId, parseSessionOwner } from "../src/protocol/session-id.ts";
import { gatewaySubscriptions, replyTopic, routeTopic } from "../src/protocol/topics.ts";
import { headerTemplate, parseUdpPacket } from "../src/protocol/udp-packet.ts";

describe("UDP packet", () => {
  it("the nonce is the header template: 01 00 0000 <connId> 00000000 00000000", () => {
    assert.equal(headerTemplate(0x11223344).toString("hex"), "0100000011223344" + "0000000000000000");
  });

  it("parses header fields big-endian and keeps the payload as a view", () => {
    const d = Buffer.from("010000031122334400000064000000070a0b0c", "hex");
    const r = parseUdpPacket(d);
    assert.ok(r.ok);
    assert.deepEqual(r.packet.header, {
      type: 1,
      flags: 0,
      payloadLength: 3,
      connectionId: 0x11223344,
      timestamp: 100,
      sequence: 7,
    });
    assert.equal(r.packet.payload.toString("hex"), "0a0b0c");
  });

  it("rejects datagrams shorter than 16 bytes", () => {
    assert.deepEqual(parseUdpPacket(Buffer.alloc(15, 1)), { ok: false, reason: "too_short" });
  });

  it("rejects a payload_len that is not exactly the rest of the datagram (short or padded)", () => {
    const d = sealAudioPacket(
      Buffer.alloc(16, 7),
      { connectionId: 1, timestamp: 0, sequence: 1 },
      Buffer.from([1, 2, 3]),
    );
    assert.deepEqual(parseUdpPacket(d.subarray(0, d.length - 1)), { ok: false, reason: "length_mismatch" });
    assert.deepEqual(parseUdpPacket(Buffer.concat([d, Buffer.from([0])])), {
      ok: false,
      reason: "length_mismatch",
    });
  });

  it("rejects a type other than audio (0x01)", () => {
    const d = Buffer.alloc(16);
    d[0] = 2;
    assert.deepEqual(parseUdpPacket(d), { ok: false, reason: "not_audio" });
  });
});

describe("AES-128-CTR with the header as IV", () => {
  it("matches OpenSSL aes-128-ctr with the 16-byte header as the initial counter block", () => {
    const key = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
    const plain = Buffer.alloc(40, 0x5a); // more than two blocks: the counter must carry
    const d = sealAudioPacket(key, { connectionId: 0xdeadbeef, timestamp: 5, sequence: 0xffffffff }, plain);
    const iv = d.subarray(0, 16);
    const reference = createDecipheriv("aes-128-ctr", key, iv).update(d.subarray(16));
    assert.deepEqual(reference, plain);
    const parsed = parseUdpPacket(d);
    assert.ok(parsed.ok);
    assert.deepEqual(openAudioPacket(key, parsed.packet), plain);
  });

  it("is its own inverse and keeps the length (no padding, no tag)", () => {
    const key = Buffer.alloc(16, 3);
    const iv = headerTemplate(9);
    const data = Buffer.from("hello opus");
    const enc = aesCtr(key, iv, data);
    assert.equal(enc.length, data.length);
    assert.deepEqual(aesCtr(key, iv, enc), data);
  });
});

describe("client id", () => {
  it("takes the MAC from the second part, underscores to colons", () => {
    const r = parseDeviceClientId("GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34");
    assert.ok(r.ok);
    assert.equal(r.id.mac, "a0:85:e3:f4:49:34");
    assert.equal(r.id.group, "GID_default");
  });

  it("accepts the legacy two-part form", () => {
    const r = parseDeviceClientId("GID_test@@@68_25_dd_bb_f3_a0");
    assert.ok(r.ok);
    assert.equal(r.id.uuid, undefined);
  });

  it("refuses an uppercase or malformed MAC, and ids without @@@", () => {
    assert.deepEqual(parseDeviceClientId("G@@@A0_85_E3_F4_49_34@@@x"), { ok: false, reason: "bad_mac" });
    assert.deepEqual(parseDeviceClientId("G@@@a0_85_e3@@@x"), { ok: false, reason: "bad_mac" });
    assert.deepEqual(parseDeviceClientId("just-a-client"), { ok: false, reason: "bad_format" });
  });

  it("replies go to devices/p2p/<full client id>", () => {
    assert.equal(replyTopic("G@@@a0_85_e3_f4_49_34@@@u"), "devices/p2p/G@@@a0_85_e3_f4_49_34@@@u");
  });
});

describe("session id", () => {
  it("names its owner instance and boot", () => {
    const bootId = newBootId();
    const id = newSessionId({ instanceId: 3, bootId });
    assert.deepEqual(parseSessionOwner(id), { instanceId: 3, bootId });
  });

  it("two boots of one instance differ", () => {
    assert.notEqual(newBootId(1000), newBootId(1000));
  });

  it("an id this gateway did not issue has no owner", () => {
    assert.equal(parseSessionOwner("2f4c1e1e-6f5d-4ae6-b1c0_a0b1c2d3e4f5_conversation"), undefined);
    assert.equal(parseSessionOwner(""), undefined);
  });
});

describe("Opus packet sanity", () => {
  it("accepts a mono SILK 60 ms frame (TOC config 3, code 0)", () => {
    assert.equal(checkOpusPacket(Buffer.from([0x18, 1, 2, 3])), undefined);
  });

  it("rejects empty, stereo and impossible frame counts", () => {
    assert.equal(checkOpusPacket(Buffer.alloc(0)), "empty");
    assert.equal(checkOpusPacket(Buffer.from([0x1c, 0])), "stereo");
    assert.equal(checkOpusPacket(Buffer.from([0x1b, 0x00])), "bad_frame_count"); // code 3, 0 frames
    assert.equal(checkOpusPacket(Buffer.from([0x1b, 0x03])), "bad_frame_count"); // 3 x 60 ms > 120 ms
  });
});

describe("topics", () => {
  it("only the device ingest is a shared subscription", () => {
    const subs = gatewaySubscriptions(2);
    assert.deepEqual(
      subs.filter((s) => s.startsWith("$share/")),
      ["$share/gateway/ingest/+"],
    );
    assert.ok(subs.includes("gateway/forward/2"));
  });

  it("routes ingest, lifecycle and coordination topics, and nothing else", () => {
    assert.deepEqual(routeTopic("ingest/G@@@a@@@b"), { kind: "ingest", clientId: "G@@@a@@@b" });
    assert.deepEqual(routeTopic("lifecycle/disconnected/x"), { kind: "disconnected", clientId: "x" });
    assert.deepEqual(routeTopic("gateway/presence/4"), { kind: "presence", instanceId: 4 });
    assert.equal(routeTopic("ingest/a/b"), undefined);
    assert.equal(routeTopic("device-server"), undefined);
    assert.equal(routeTopic("gateway/presence/x"), undefined);
  });
});
