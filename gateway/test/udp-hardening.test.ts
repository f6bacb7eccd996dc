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
import type { AgentFactory } from "../src/agent/agent-bridge.ts";
import type { RunningGateway } from "../src/app.ts";
import type { DropReason } from "../src/ops/metrics.ts";
import { sealAudioPacket } from "../src/protocol/audio-packet.ts";
import { MAX_SEQUENCE_JUMP, MOVE_AFTER } from "../src/session/upstream-guard.ts";
import { rawUdpUnavailable, sendRawUdp } from "./support/raw-udp.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

/** Sends one datagram per byte value: header copied from `observed`, sequence `seq`, 1-byte payload. */
function forgeEveryByte(observed: Buffer, seq: number, sockets: readonly Socket[], port: number): number {
  for (let b = 0; b < 256; b++) {
    const d = Buffer.alloc(17);
    observed.copy(d, 0, 0, 16);
    d.writeUInt16BE(1, 2);
    d.writeUInt32BE(seq >>> 0, 12);
    d[16] = b;
    (sockets[b % sockets.length] as Socket).send(d, port, "127.0.0.1");
  }
  return 256;
}

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
    // The first MOVE_AFTER - 1 frames from the new socket only prove it; the rest are heard.
    device.talk(600);
    // Only the new socket is open: every frame counted now arrived at the new address.
    await device.waitForAudio(3);
    assert.ok(device.stats.framesReceived >= heard + 3);
    assert.deepEqual(sessionOf(device)?.remote, { address: "127.0.0.1", port: newPort });
    assert.deepEqual(device.stats.errors, {});
    await device.close();
  });

  it("the reported hijack: one observed datagram, 256 forged 1-byte payloads at seq+2000 and at seq+1: the device loses nothing, its audio stays", async () => {
    const device = await echoingDevice();
    device.talk(3000);
    await device.waitForAudio(3);
    let heardByStranger = 0;
    stranger.on("message", () => heardByStranger++);
    const observed = device.sendFrame();
    const seen = observed.readUInt32BE(12);
    const counted = () =>
      (["udp_unproven_source", "udp_bad_opus", "udp_sequence_jump", "udp_replay"] as const).reduce(
        (n, r) => n + drops(r),
        0,
      );
    const replays0 = drops("udp_replay");
    const counted0 = counted();
    // From four ports of the attacker's host, so that no socket's bucket (200) runs dry
    // and every forged datagram reaches the session.
    const ports = await Promise.all([0, 1, 2, 3].map(() => udpSocket("127.0.0.2")));
    let sent = 0;
    for (const ahead of [2000, 1]) sent += forgeEveryByte(observed, seen + ahead, ports, gw.udpPort);
    for (const p of ports) p.on("message", () => heardByStranger++);
    // Every forged datagram is refused and counted (none is a replay of a genuine frame).
    await eventually(() => counted() - counted0 >= sent, 5000, "every forged datagram counted");
    const replays = drops("udp_replay") - replays0;
    console.log(
      `hijack attempt: ${sent} forged datagrams refused; genuine frames dropped as replays: ${replays}`,
    );
    assert.ok(replays <= 3, `${replays} genuine frames lost`);
    assert.deepEqual(sessionOf(device)?.remote, { address: "127.0.0.1", port: device.udpLocalPort });
    await device.waitForAudio(5);
    assert.equal(heardByStranger, 0, "the forger received downstream audio");
    stranger.removeAllListeners("message");
    for (const p of ports) p.close();
    assert.deepEqual(device.stats.errors, {});
    await device.close();
  });

  it("a 64 KB datagram with a live connection id is refused before decryption", async () => {
    const device = await echoingDevice();
    device.stopTalking();
    const before = drops("udp_bad_opus");
    const big = Buffer.alloc(60_000); // the largest a UDP datagram carries is 65,507 bytes
    toGateway(forged(device, device.stats.framesSent + 1, big));
    await eventually(() => drops("udp_bad_opus") === before + 1, 5000, "an oversized drop");
    await stillServed(device);
    await device.close();
  });

  it("a flood spread over 60 source ports of one address is cut by the per-address limit", async () => {
    const sockets = await Promise.all(Array.from({ length: 60 }, () => udpSocket("127.0.0.3")));
    try {
      const limited0 = drops("udp_rate_limited");
      const short0 = drops("udp_too_short");
      const t0 = performance.now();
      const outcomes = () => drops("udp_rate_limited") - limited0 + (drops("udp_too_short") - short0);
      let sent = 0;
      // In rounds of 600 (10 per port), each counted before the next, so that no datagram
      // is lost in a socket buffer and every one has its outcome.
      while (sent < 12_000) {
        for (let i = 0; i < 600; i++)
          (sockets[i % 60] as Socket).send(Buffer.alloc(10), gw.udpPort, "127.0.0.1");
        sent += 600;
        await eventually(() => outcomes() === sent, 10_000, "every flood datagram counted");
      }
      const seconds = (performance.now() - t0) / 1000;
      const parsed = drops("udp_too_short") - short0;
      console.log(
        `12,000 datagrams over 60 ports in ${seconds.toFixed(2)} s: ${parsed} parsed, the rest limited`,
      );
      // The address's burst (2,000) plus 1,000/s while the flood lasted.
      assert.ok(
        parsed <= 2000 + Math.ceil(1000 * seconds) + 1,
        `${parsed} parsed in ${seconds.toFixed(2)} s`,
      );
    } finally {
      for (const s of sockets) s.close();
    }
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

  it("a valid-looking packet from a new address, far ahead, is refused and moves nothing; the session carries on", async () => {
    const device = await echoingDevice();
    device.stopTalking();
    const before = drops("udp_unproven_source");
    toGateway(forged(device, device.stats.framesSent + MAX_SEQUENCE_JUMP + 1, speech));
    await eventually(() => drops("udp_unproven_source") === before + 1, 5000, "an unproven-source drop");
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

  it("genuine frames from source port 0 are dropped before parsing and counted; the address stays", {
    skip: rawUdpUnavailable,
  }, async () => {
    const device = await echoingDevice();
    device.stopTalking();
    const before = drops("udp_source_port_zero");
    // Valid newer frames from the device's own host: from any other port, MOVE_AFTER of
    // them would move the session there, and no reply can be sent to port 0.
    const next = device.stats.framesSent + 1;
    const frames = Array.from({ length: MOVE_AFTER }, (_, i) => forged(device, next + i, speech));
    sendRawUdp(frames, 0, { address: "127.0.0.1", port: gw.udpPort });
    await eventually(
      () => drops("udp_source_port_zero") === before + MOVE_AFTER,
      5000,
      "the port-0 datagrams counted",
    );
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

  it("a flood from one socket on the device's own address is cut to its socket's bucket: the device is still heard", async () => {
    const device = await echoingDevice();
    device.talk(4000);
    // A neighbour behind the same address (another port of 127.0.0.1), sending without a
    // pause for 1.5 s: many times the address's whole rate.
    const neighbour = await udpSocket("127.0.0.1");
    const up0 = gw.metrics.framesUpTotal;
    const sent0 = device.stats.framesSent;
    const until = performance.now() + 1500;
    await new Promise<void>((resolve) => {
      const tick = () => {
        for (let i = 0; i < 4; i++) neighbour.send(Buffer.alloc(10), gw.udpPort, "127.0.0.1");
        if (performance.now() < until) setImmediate(tick);
        else resolve();
      };
      tick();
    });
    const sent = device.stats.framesSent - sent0;
    const heard = gw.metrics.framesUpTotal - up0;
    neighbour.close();
    // The neighbour's refused datagrams took none of the address's tokens: its socket's
    // bucket (100/s) is all it can use, and the device's 17 frames a second all pass.
    assert.ok(heard >= sent - 3, `${heard} of the device's ${sent} frames taken during the flood`);
    await device.close();
  });
});

describe("UDP hardening, Opus passed through undecoded (pushOpus, as the LiveKit media bridge)", () => {
  let stack: Stack;
  let gw: RunningGateway;
  const received: number[] = [];
  /** Per device session (the client id's), the sequence each frame reached the bridge with. */
  const sequences = new Map<string, number[]>();
  const passThrough: AgentFactory = (info) => ({
    pushAudio: () => {},
    pushOpus: (frame) => {
      received.push(frame.opus.length);
      sequences.set(info.clientId, [...(sequences.get(info.clientId) ?? []), frame.sequence]);
    },
    onDeviceEvent: () => {},
    close: async () => {},
  });

  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway({}, passThrough);
  });

  after(() => stack.stop());

  it("the same hijack moves nothing: the bridge keeps getting the device's frames, the address stays", async () => {
    const device = await stack.device();
    await device.hello();
    for (let i = 0; i < 5; i++) device.sendFrame();
    await eventually(() => received.length === 5, 5000, "five frames at the bridge");
    const observed = device.sendFrame();
    const seen = observed.readUInt32BE(12);
    const ports = await Promise.all([0, 1, 2, 3].map(() => udpSocket("127.0.0.2")));
    try {
      for (const ahead of [2000, 1]) forgeEveryByte(observed, seen + ahead, ports, gw.udpPort);
      const refused = () =>
        (["udp_unproven_source", "udp_bad_opus"] as const).reduce((n, r) => n + gw.metrics.dropCount(r), 0);
      await eventually(() => refused() === 512, 5000, "512 forged datagrams refused");
      for (let i = 0; i < 5; i++) device.sendFrame();
      // 5 + the observed one + 5: every genuine frame, and nothing else, reached the bridge.
      await eventually(() => received.length === 11, 5000, "the genuine frames after the attack");
      assert.equal(gw.metrics.dropCount("udp_replay"), 0);
      assert.deepEqual(gw.gateway.sessions.byClient(device.clientId)?.remote, {
        address: "127.0.0.1",
        port: device.udpLocalPort,
      });
    } finally {
      for (const p of ports) p.close();
    }
  });

  it("each frame reaches the bridge with its datagram's sequence (the upstream clock counts lost frames by it)", async () => {
    const device = await stack.device();
    await device.hello();
    const sent = [0, 1, 2].map(() => device.sendFrame().readUInt32BE(12));
    await eventually(() => sequences.get(device.clientId)?.length === 3, 5000, "three frames at the bridge");
    assert.deepEqual(sequences.get(device.clientId), sent);
    await device.close();
  });
});
