/**
 * Property tests (fast-check) of everything a UDP datagram from the internet reaches: the
 * packet parser, and the gateway core's whole datagram path (rate limit, parse, session
 * lookup, sequence, AES-CTR, Opus sanity, real libopus in worker threads). 100,000+ inputs
 * each: random bytes, forged packets with live connection ids, and valid packets mutated.
 * Nothing throws, nothing rejects unhandled, and every datagram is accounted for: dropped
 * and counted by reason, or decoded.
 */
import assert from "node:assert/strict";
import type { RemoteInfo } from "node:dgram";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { upstreamClip } from "../../tools/sim/opus-frames.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import type { GatewayMetrics } from "../src/ops/metrics.ts";
import { sealAudioPacket } from "../src/protocol/audio-packet.ts";
import { parseUdpPacket, UDP_HEADER_BYTES } from "../src/protocol/udp-packet.ts";
import type { Gateway } from "../src/session/gateway.ts";
import type { UdpSourceLimits } from "../src/session/source-limiter.ts";
import { MINIMAL_HELLO, replyTarget, startCore } from "./support/core.ts";
import { eventually } from "./support/stack.ts";

const RUNS = 100_000;
const CHUNK = 10_000;

/** Mostly short datagrams (where the parser's edges are), some long ones. */
const randomBytes = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1600 }) },
);

/** A header that is nearly right: type 1 or not, a length field that matches or is off. */
const headerish = fc
  .record({
    type: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 255 })),
    flags: fc.integer({ min: 0, max: 255 }),
    lenDelta: fc.oneof(
      fc.constant(0),
      fc.integer({ min: -20, max: 20 }),
      fc.integer({ min: 0, max: 0xffff }),
    ),
    rest: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    payload: fc.uint8Array({ maxLength: 200 }),
  })
  .map(({ type, flags, lenDelta, rest, payload }) => {
    const d = Buffer.alloc(UDP_HEADER_BYTES + payload.length);
    d[0] = type;
    d[1] = flags;
    d.writeUInt16BE(Math.max(0, Math.min(0xffff, payload.length + lenDelta)), 2);
    d.set(rest, 4);
    d.set(payload, UDP_HEADER_BYTES);
    return d;
  });

describe("parseUdpPacket on 100,000 random and nearly valid datagrams", () => {
  it("never throws; accepts exactly type 1 with a length field equal to the payload; fields are the bytes", () => {
    const reasons = new Map<string, number>();
    fc.assert(
      fc.property(
        fc.oneof(
          randomBytes.map((b) => Buffer.from(b)),
          headerish,
        ),
        (d) => {
          const r = parseUdpPacket(d);
          const key = r.ok ? "ok" : r.reason;
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
          if (d.length < 16) return !r.ok && r.reason === "too_short";
          if (d[0] !== 1) return !r.ok && r.reason === "not_audio";
          if (d.length !== 16 + d.readUInt16BE(2)) return !r.ok && r.reason === "length_mismatch";
          if (!r.ok) return false;
          const h = r.packet.header;
          return (
            h.type === 1 &&
            h.flags === d[1] &&
            h.payloadLength === d.length - 16 &&
            h.connectionId === d.readUInt32BE(4) &&
            h.timestamp === d.readUInt32BE(8) &&
            h.sequence === d.readUInt32BE(12) &&
            r.packet.headerBytes.equals(d.subarray(0, 16)) &&
            r.packet.payload.equals(d.subarray(16))
          );
        },
      ),
      { numRuns: RUNS },
    );
    let total = 0;
    for (const n of reasons.values()) total += n;
    assert.equal(total, RUNS);
    for (const k of ["ok", "too_short", "not_audio", "length_mismatch"])
      assert.ok((reasons.get(k) ?? 0) > 100, k);
  });
});

interface LiveSession {
  readonly key: Buffer;
  readonly connectionId: number;
  /** Highest sequence any input has used for this session: valid packets go above it. */
  lastSeq: number;
}

type Mutation =
  | { readonly kind: "none" }
  | { readonly kind: "replay" }
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "set"; readonly at: number; readonly value: number }
  | { readonly kind: "truncate"; readonly keep: number }
  | { readonly kind: "append"; readonly bytes: Uint8Array };

type Input =
  | { readonly kind: "random"; readonly bytes: Buffer }
  | {
      readonly kind: "forged";
      readonly s: number;
      readonly seq: number;
      readonly seqNear: boolean;
      /** Sent with the device's own source address and port (a spoofing forger). */
      readonly spoofed: boolean;
      readonly payload: Uint8Array;
    }
  | { readonly kind: "valid"; readonly s: number; readonly frame: number; readonly mutation: Mutation };

const ADDRESSES = [
  "198.51.100.1",
  "198.51.100.2",
  "203.0.113.7",
  "203.0.113.8",
  "192.0.2.44",
  "::ffff:192.0.2.45",
];
const SESSIONS = 8;

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "replay" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(200), bit: fc.nat(7) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(20), value: fc.nat(255) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat(200) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
);

const input: fc.Arbitrary<Input> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        randomBytes.map((b) => Buffer.from(b)),
        headerish,
      )
      .map((bytes) => ({ kind: "random" as const, bytes })),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("forged" as const),
      s: fc.nat(SESSIONS - 1),
      seq: fc.oneof(fc.integer({ min: -5, max: 2100 }), fc.integer({ min: 0, max: 0xffffffff })),
      seqNear: fc.boolean(),
      spoofed: fc.boolean(),
      payload: fc.uint8Array({ maxLength: 120 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("valid" as const),
      s: fc.nat(SESSIONS - 1),
      frame: fc.nat(99),
      mutation,
    }),
  },
);

describe("Gateway.handleDatagram on 100,000 random, forged and mutated datagrams", () => {
  let pool: OpusPool;
  let metrics: GatewayMetrics;
  let gateway: Gateway;
  const sessions: LiveSession[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  const clip = upstreamClip(2, 6);

  before(() => {
    process.on("unhandledRejection", onUnhandled);
  });
  after(() => {
    process.off("unhandledRejection", onUnhandled);
  });

  /** A gateway core with real Opus workers and SESSIONS live sessions; always stopped. */
  async function withGateway(sourceLimit: UdpSourceLimits, body: () => Promise<void>): Promise<void> {
    pool = await OpusPool.start({ size: 2, complexity: 5, bitrate: 24000 });
    const replies = new Map<string, string>();
    ({ gateway, metrics } = startCore({
      pool,
      sourceLimit,
      publish: (topic, payload) => {
        const client = replyTarget(topic);
        if (client !== undefined) replies.set(client, payload);
      },
    }));
    try {
      const hello = MINIMAL_HELLO;
      sessions.length = 0;
      for (let i = 0; i < SESSIONS; i++) {
        const clientId = `GID_fuzz@@@02_00_00_00_00_${i.toString(16).padStart(2, "0")}@@@u${i}`;
        gateway.handleBrokerMessage(`ingest/${clientId}`, hello);
        const reply = JSON.parse(replies.get(clientId) ?? "{}") as { udp: { key: string; nonce: string } };
        sessions.push({
          key: Buffer.from(reply.udp.key, "hex"),
          connectionId: Buffer.from(reply.udp.nonce, "hex").readUInt32BE(4),
          lastSeq: 0,
        });
      }
      await body();
    } finally {
      await gateway.drain();
      metrics.stop();
      await pool.shutdown();
    }
  }

  const totalDrops = () => Object.values(metrics.drops()).reduce((a, b) => a + b, 0);

  /**
   * Feeds one datagram. One that no synchronous check dropped has moved its session's
   * sequence (the session records it before decoding), so the model follows, and the
   * next valid packet of that session is always newer.
   */
  function feed(d: Buffer, from: RemoteInfo): void {
    const before = totalDrops();
    gateway.handleDatagram(d, from);
    if (totalDrops() !== before) return;
    const parsed = parseUdpPacket(d);
    assert.ok(parsed.ok, "a datagram that does not parse was not dropped");
    const s = sessions.find((x) => x.connectionId === parsed.packet.header.connectionId);
    assert.ok(s, "a datagram for no session was not dropped");
    assert.ok(parsed.packet.header.sequence > s.lastSeq, "an old sequence was not dropped");
    s.lastSeq = parsed.packet.header.sequence;
  }

  /** Session `s`'s device: the source address and port its genuine packets come from. */
  const home = (s: number): RemoteInfo => ({
    address: `192.0.2.${100 + s}`,
    port: 5000 + s,
    family: "IPv4",
    size: 0,
  });

  function datagramOf(i: Input): Buffer {
    if (i.kind === "random") return i.bytes;
    const s = sessions[i.s] as LiveSession;
    if (i.kind === "forged") {
      // Someone who learned the connection id but not the key: right header, random payload.
      const seq = (i.seqNear ? s.lastSeq + i.seq : i.seq) >>> 0;
      const d = Buffer.alloc(UDP_HEADER_BYTES + i.payload.length);
      d[0] = 1;
      d.writeUInt16BE(i.payload.length, 2);
      d.writeUInt32BE(s.connectionId, 4);
      d.writeUInt32BE(seq, 12);
      d.set(i.payload, UDP_HEADER_BYTES);
      return d;
    }
    const m = i.mutation;
    const seq = m.kind === "replay" ? Math.max(1, s.lastSeq) : s.lastSeq + 1;
    const d = sealAudioPacket(
      s.key,
      { connectionId: s.connectionId, timestamp: 0, sequence: seq },
      clip.speech[i.frame % clip.speech.length] as Buffer,
    );
    switch (m.kind) {
      case "flip":
        d[m.at % d.length] = (d[m.at % d.length] as number) ^ (1 << m.bit);
        return d;
      case "set":
        d[m.at % d.length] = m.value;
        return d;
      case "truncate":
        return d.subarray(0, m.keep % d.length);
      case "append":
        return Buffer.concat([d, m.bytes]);
      default:
        return d;
    }
  }

  it("never throws; every datagram is dropped by reason or decoded (drops + accepted == inputs)", () =>
    withGateway(
      {
        perSocket: { ratePerSecond: 1e9, burst: 1e9, maxSources: 4 },
        perAddress: { ratePerSecond: 1e9, burst: 1e9, maxSources: 4 },
      },
      async () => {
        let inputs = 0;
        let cleanValid = 0;
        // Each device's first packet pins its address (a forger's plausible packet from
        // elsewhere would otherwise be first, and the device would have to prove its move).
        for (let s = 0; s < SESSIONS; s++) {
          inputs++;
          cleanValid++;
          feed(datagramOf({ kind: "valid", s, frame: 0, mutation: { kind: "none" } }), home(s));
        }
        for (let chunk = 0; chunk < RUNS / CHUNK; chunk++) {
          fc.assert(
            fc.property(input, fc.constantFrom(...ADDRESSES), fc.nat(65535), (i, address, port) => {
              const family = address.includes(":") ? "IPv6" : "IPv4";
              if (i.kind === "valid" && i.mutation.kind === "none") cleanValid++;
              inputs++;
              // Genuine packets (mutated or not) come from the device's address; forged ones
              // from anywhere, or spoofing the device's.
              const fromDevice = i.kind === "valid" || (i.kind === "forged" && i.spoofed);
              feed(datagramOf(i), fromDevice ? home(i.s) : { address, port, family, size: 0 });
            }),
            { numRuns: CHUNK },
          );
          // Decodes run in the workers; wait until every input has its outcome.
          await eventually(
            () => totalDrops() + metrics.framesUpTotal === inputs,
            20_000,
            `outcomes of ${inputs} inputs`,
          );
        }
        assert.equal(inputs, RUNS + SESSIONS);
        assert.equal(totalDrops() + metrics.framesUpTotal, RUNS + SESSIONS);
        const drops = metrics.drops();
        for (const r of [
          "udp_too_short",
          "udp_not_audio",
          "udp_length_mismatch",
          "udp_unknown_connection",
          "udp_replay",
          "udp_sequence_jump",
          "udp_unproven_source",
          "udp_bad_opus",
        ]) {
          assert.ok((drops[r] ?? 0) > 0, `no ${r} drops: ${JSON.stringify(drops)}`);
        }
        // Every unmutated valid packet was decoded, whatever came before it.
        assert.ok(
          metrics.framesUpTotal >= cleanValid,
          `${metrics.framesUpTotal} decoded of ${cleanValid} clean`,
        );
        assert.equal(drops.udp_rate_limited ?? 0, 0);
        assert.equal(gateway.sessions.size, SESSIONS);
        assert.deepEqual(unhandled, []);
      },
    ));

  it("under the default rate limit, a flood from one address is mostly refused, and every datagram is counted", () =>
    withGateway(
      {
        perSocket: { ratePerSecond: 200, burst: 400, maxSources: 10_000 },
        perAddress: { ratePerSecond: 1000, burst: 2000, maxSources: 10_000 },
      },
      async () => {
        const flood = 50_000;
        const from: RemoteInfo = { address: "198.51.100.66", port: 4000, family: "IPv4", size: 0 };
        const s = sessions[0] as LiveSession;
        const frame = clip.speech[0] as Buffer;
        const t0 = performance.now();
        for (let i = 1; i <= flood; i++) {
          const d = sealAudioPacket(
            s.key,
            { connectionId: s.connectionId, timestamp: 0, sequence: i },
            frame,
          );
          gateway.handleDatagram(d, from);
        }
        const seconds = (performance.now() - t0) / 1000;
        await eventually(
          () => totalDrops() + metrics.framesUpTotal === flood,
          20_000,
          "every flood datagram counted",
        );
        const passed = flood - metrics.dropCount("udp_rate_limited");
        assert.ok(passed <= 400 + Math.ceil(200 * seconds) + 1, `${passed} passed in ${seconds} s`);
        assert.deepEqual(unhandled, []);
      },
    ));
});
