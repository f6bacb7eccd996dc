/**
 * The UDP port faces the internet: a per-source rate limit before any crypto, sequences
 * that only move forward (from the first packet on), a remote address that only a proven
 * packet moves, and a NAT rebinding that does move it. Real sockets, real broker.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { upstreamClip } from "../../tools/sim/opus-frames.ts";
import type { RunningGateway } from "../src/app.ts";
import type { DropReason } from "../src/ops/metrics.ts";
import { sealAudioPacket } from "../src/protocol/audio-packet.ts";
import { MAX_SEQUENCE_JUMP } from "../src/session/device-session.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

async function udpSocket(address: string): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
  return s;
}

describe("UDP hardening", () => {
  let stack: Stack;
  let gw: RunningGateway;
  /** Another host on the loopback network (127.0.0.2). */
  let stranger: Socket;
  const speech = upstreamClip(3).speech[5] as Buffer;

  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway();
    stranger = await udpSocket("127.0.0.2");
  });

  after(async () => {
    stranger.close();
    await stack.stop();
  });

  const toGateway = (d: Buffer) => stranger.send(d, gw.udpPort, "127.0.0.1");
  const sessionOf = (d: SimulatedDevice) => gw.gateway.sessions.byClient(d.clientId);
  const drops = (r: DropReason) => gw.metrics.dropCount(r);

  async function echoingDevice(): Promise<SimulatedDevice> {
    const device = await stack.device();
    await device.hello();
    device.listen("realtime");
    device.talk(240);
    await device.waitForAudio(3);
    return device;
  }

  async function stillServed(device: SimulatedDevice): Promise<void> {
    device.talk(180);
    await device.waitForAudio(2);
    assert.deepEqual(device.stats.errors, {});
    assert.deepEqual(sessionOf(device)?.remote, { address: "127.0.0.1", port: device.udpLocalPort });
  }

  function forged(device: SimulatedDevice, sequence: number, opus: Buffer): Buffer {
    const s = device.session;
    assert.ok(s);
    return sealAudioPacket(s.key, { connectionId: s.nonce.readUInt32BE(4), timestamp: 0, sequence }, opus);
  }

  it("a NAT rebinding (same device, new socket, valid newer frame) moves the address, and audio follows", async () => {
    const device = await echoingDevice();
    const oldPort = device.udpLocalPort;
    assert.deepEqual(sessionOf(device)?.remote, { address: "127.0.0.1", port: oldPort });
    device.stopTalking();
    await device.rebind();
    const newPort = device.udpLocalPort;
    assert.notEqual(newPort, oldPort);
    const heard = device.stats.framesReceived;
    device.talk(300);
    // Only the new socket is open: every frame counted now arrived at the new address.
    await device.waitForAudio(3);
    assert.ok(device.stats.framesReceived >= heard + 3);
    assert.deepEqual(sessionOf(device)?.remote, { address: "127.0.0.1", port: newPort });
    assert.deepEqual(device.stats.errors, {});
    await device.close();
  });

  it("a first packet with a sequence far past 1 is refused, and does not poison the session", async () => {
    const device = await stack.device();
    await device.hello();
    device.listen("realtime");
    const before = drops("udp_sequence_jump");
    // Before the device's first packet: a forger (here even with the key) jumps ahead.
    toGateway(forged(device, MAX_SEQUENCE_JUMP + 1, speech));
    toGateway(forged(device, 0xffffffff, speech));
    await eventually(() => drops("udp_sequence_jump") === before + 2, 5000, "two sequence-jump drops");
    assert.equal(sessionOf(device)?.remote, undefined);
    // The genuine stream from sequence 1 is served.
    await stillServed(device);
    await device.close();
  });

  it("a jump of more than MAX_SEQUENCE_JUMP mid-session is refused; the session carries on", async () => {
    const device = await echoingDevice();
    device.stopTalking();
    const before = drops("udp_sequence_jump");
    toGateway(forged(device, device.stats.framesSent + MAX_SEQUENCE_JUMP + 1, speech));
    await eventually(() => drops("udp_sequence_jump") === before + 1, 5000, "a sequence-jump drop");
    await stillServed(device);
    await device.close();
  });

  it("a newer packet from a new address whose Opus is not the announced 60 ms is refused; the address stays", async () => {
    const device = await echoingDevice();
    device.stopTalking();
    const before = drops("udp_bad_opus");
    // TOC 0x08: SILK narrowband, 20 ms, code 0: valid Opus, but not what this device sends.
    toGateway(forged(device, device.stats.framesSent + 3, Buffer.from([0x08, 0x11, 0x22, 0x33])));
    await eventually(() => drops("udp_bad_opus") === before + 1, 5000, "a bad-opus drop");
    await stillServed(device);
    await device.close();
  });

  it("a flood from one socket is cut to its bucket before any parsing; other sockets are served", async () => {
    const device = await echoingDevice();
    device.talk(3000);
    const limited0 = drops("udp_rate_limited");
    const short0 = drops("udp_too_short");
    const flood = 3000;
    const t0 = performance.now();
    for (let i = 0; i < flood; i++) toGateway(Buffer.alloc(10, i & 0xff));
    await eventually(
      () => drops("udp_rate_limited") - limited0 + (drops("udp_too_short") - short0) === flood,
      10_000,
      "every flood datagram counted",
    );
    const seconds = (performance.now() - t0) / 1000;
    const parsed = drops("udp_too_short") - short0;
    // The burst (200) plus what 100/s refilled while the flood lasted; the rest never parsed.
    assert.ok(parsed <= 200 + Math.ceil(100 * seconds) + 1, `${parsed} parsed in ${seconds.toFixed(2)} s`);
    assert.ok(drops("udp_rate_limited") - limited0 >= flood - parsed);
    // The device (its own socket) kept talking throughout and is still heard.
    await device.waitForAudio(3);
    assert.deepEqual(device.stats.errors, {});
    await device.close();
  });
});
