/**
 * Bad input from devices (or anyone on the internet): each kind is dropped, counted by
 * reason, and the session and process carry on.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import type { RunningGateway } from "../src/app.ts";
import type { DropReason } from "../src/ops/metrics.ts";
import { sealAudioPacket } from "../src/protocol/audio-packet.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

describe("bad input is dropped, counted, and harms nothing", () => {
  let stack: Stack;
  let gw: RunningGateway;
  let device: SimulatedDevice;
  let stranger: Socket;

  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway();
    device = await stack.device();
    await device.hello();
    device.listen("realtime");
    device.talk(180);
    await device.waitForAudio(3);
    stranger = createSocket("udp4");
    await new Promise<void>((r) => stranger.bind(0, "127.0.0.1", () => r()));
  });

  after(async () => {
    stranger.close();
    await stack.stop();
  });

  /** Sends, waits until the reason's counter moves, then proves the session still echoes. */
  async function expectDrop(reason: DropReason, act: () => void): Promise<void> {
    const before = gw.metrics.dropCount(reason);
    act();
    await eventually(() => gw.metrics.dropCount(reason) > before, 5000, `a ${reason} drop`);
    await stillServed();
  }

  async function stillServed(): Promise<void> {
    device.talk(120);
    await device.waitForAudio(2);
    assert.deepEqual(device.stats.errors, {});
  }

  const toGateway = (d: Buffer) => stranger.send(d, gw.udpPort, "127.0.0.1");
  const session = () => gw.gateway.sessions.byClient(device.clientId);

  it("malformed JSON", () => expectDrop("mqtt_malformed_json", () => device.publishRaw("{type: hello")));

  it("a JSON value that is not an object", () =>
    expectDrop("mqtt_not_object", () => device.publishRaw("[1,2,3]")));

  it("an unknown message type", () =>
    expectDrop("mqtt_unknown_type", () =>
      device.send({ type: "iot", session_id: device.session?.sessionId ?? "" }),
    ));

  it("a hello with version other than 3 gets no reply and keeps the current session", async () => {
    const sessionId = device.session?.sessionId;
    await expectDrop("mqtt_hello_version", () =>
      device.send({ type: "hello", version: 2, transport: "udp", audio_params: { format: "opus" } }),
    );
    assert.equal(session()?.sessionId, sessionId);
  });

  // Its detail used to be String(version): Array.prototype.join recursing 3,300 levels
  // overflowed the stack inside the broker's message handler, an uncaught exception that
  // ended the process (and every session on it) on one 6.6 KB message from any device.
  it("a hello whose version is 3,300 nested arrays (within 8 KiB)", async () => {
    const depth = 3300;
    const raw = `{"type":"hello","version":${"[".repeat(depth)}${"]".repeat(depth)},"transport":"udp"}`;
    assert.ok(Buffer.byteLength(raw) <= 8192);
    const sessionId = device.session?.sessionId;
    await expectDrop("mqtt_hello_version", () => device.publishRaw(raw));
    assert.equal(session()?.sessionId, sessionId);
  });

  it("an oversized payload (over 8 KiB)", () =>
    expectDrop("mqtt_oversized", () =>
      device.send({
        type: "listen",
        state: "detect",
        text: "x".repeat(9000),
        session_id: device.session?.sessionId ?? "",
      }),
    ));

  it("a UDP datagram shorter than 16 bytes", () =>
    expectDrop("udp_too_short", () => toGateway(Buffer.alloc(10, 1))));

  it("a payload_len that disagrees with the datagram length", () => {
    const s = device.session;
    assert.ok(s);
    const d = sealAudioPacket(
      s.key,
      { connectionId: s.nonce.readUInt32BE(4), timestamp: 0, sequence: 1 },
      Buffer.alloc(20, 8),
    );
    return expectDrop("udp_length_mismatch", () => toGateway(Buffer.concat([d, Buffer.alloc(3)])));
  });

  it("an unknown connection id", () => {
    let id = 1;
    while (gw.gateway.sessions.byConnection(id)) id++;
    return expectDrop("udp_unknown_connection", () =>
      toGateway(
        sealAudioPacket(
          Buffer.alloc(16),
          { connectionId: id, timestamp: 0, sequence: 1 },
          Buffer.from([0x18, 1]),
        ),
      ),
    );
  });

  it("a replayed packet (an old sequence)", async () => {
    device.stopTalking();
    const captured = device.sendFrame();
    await device.waitForAudio(1);
    await expectDrop("udp_replay", () => toGateway(captured));
  });

  it("a packet from a new address with a bad payload does not redirect downstream audio", async () => {
    const s = device.session;
    const live = session();
    assert.ok(s && live);
    const pinned = live.remote;
    assert.equal(pinned?.port, device.udpLocalPort);
    // Right connection id, a newer sequence, but it decrypts to a stereo TOC: not our device.
    const forged = sealAudioPacket(
      s.key,
      { connectionId: s.nonce.readUInt32BE(4), timestamp: 0, sequence: device.stats.framesSent + 5 },
      Buffer.from([0x1c, 0xde, 0xad]),
    );
    await expectDrop("udp_bad_opus", () => toGateway(forged));
    assert.deepEqual(session()?.remote, pinned);
  });

  it("Opus that libopus cannot decode", () => {
    const s = device.session;
    assert.ok(s);
    // TOC passes the sanity check (mono, code 3, one 60 ms frame), but the padding flag
    // promises more padding bytes than the packet has.
    const bad = Buffer.from([0x1b, 0x41, 0xff, 0xff]);
    return expectDrop("udp_opus_decode_failed", () => device.sendFrame(bad));
  });

  it("a message for a session nobody holds is answered goodbye at once", async () => {
    const other = await stack.device();
    const bye = other.waitForMessage((m) => m.type === "goodbye", 1000);
    const staleId = `1-${gw.bootId}-0000000000000000`;
    other.send({ type: "listen", state: "start", mode: "auto", session_id: staleId });
    assert.equal((await bye).session_id, staleId);
    await other.close();
  });

  it("a client id that is not a device's is dropped and counted", async () => {
    const odd = await stack.device({ clientId: "not-a-xiaozhi-device" });
    const before = gw.metrics.dropCount("mqtt_bad_client_id");
    odd.send({ type: "hello", version: 3, transport: "udp" });
    await eventually(() => gw.metrics.dropCount("mqtt_bad_client_id") > before);
    await odd.close();
  });
});
