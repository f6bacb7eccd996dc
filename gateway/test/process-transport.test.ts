/**
 * The process transport against a stand-in media process (no child, no LiveKit). Its join:
 * a join frame that cannot be sent, one the media process refuses, or one the transport
 * left before its answer, fails the join at once instead of after the join timeout. The
 * agent's RTP: a track change comes with the packets (their generation), decoded in a real
 * Opus pool.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FromMedia, ToMedia } from "../src/agent/livekit/media/ipc-codec.ts";
import type { MediaFrameHandler, MediaProcess } from "../src/agent/livekit/media/media-process.ts";
import { ProcessTransport } from "../src/agent/livekit/media/process-transport.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { handlersNotingLoss } from "./support/room-handlers.ts";
import { eventually } from "./support/stack.ts";

/** What ProcessTransport uses of a MediaProcess; `answer` decides what each frame gets. */
function fakeMedia(answer: (m: ToMedia, reply: (f: FromMedia) => void) => string | undefined) {
  const sent: ToMedia[] = [];
  const handlers = new Map<number, MediaFrameHandler>();
  const media = {
    running: true,
    start: async () => {},
    open(handler: MediaFrameHandler) {
      handlers.set(7, handler);
      return 7;
    },
    release: (id: number) => handlers.delete(id),
    isOpen: (id: number) => handlers.has(id),
    deliver(m: ToMedia) {
      sent.push(m);
      return answer(m, (f) => queueMicrotask(() => handlers.get(m.session)?.(f)));
    },
    send(m: ToMedia) {
      return this.deliver(m) === undefined;
    },
  };
  return { media: media as unknown as MediaProcess, sent, handlers };
}

function transport(media: MediaProcess): ProcessTransport {
  return new ProcessTransport({ url: "ws://lk", roomName: "r", token: "t" }, handlersNotingLoss(), {
    media,
    pool: {} as OpusPool,
    drop: () => {},
    // Far beyond the test's own timeout: a join that waits for it fails the test.
    joinTimeoutMs: 60_000,
    leaveTimeoutMs: 60_000,
  });
}

describe("process transport join", () => {
  it("a join frame the media process did not take fails the join at once, with the reason", async () => {
    const {
      media,
      sent,
      handlers: open,
    } = fakeMedia((m, reply) => {
      if (m.kind === "join") return "media_down_control";
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    await assert.rejects(transport(media).join(), /join not sent to the media process: media_down_control/);
    assert.deepEqual(
      sent.map((m) => m.kind),
      ["join", "leave"],
    );
    assert.equal(open.size, 0, "the session is released");
  });

  it("a join the media process refuses (a duplicate or malformed join) fails at once", async () => {
    const { media, handlers: open } = fakeMedia((m, reply) => {
      if (m.kind === "join") reply({ kind: "join_failed", session: m.session, reason: "duplicate join" });
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    await assert.rejects(transport(media).join(), /join failed: duplicate join/);
    assert.equal(open.size, 0);
  });

  it("a join answered joined resolves", async () => {
    const { media } = fakeMedia((m, reply) => {
      if (m.kind === "join") reply({ kind: "joined", session: m.session, identity: "gw" });
      return undefined;
    });
    await transport(media).join();
  });

  it("a transport left while its join waits for joined fails the join at once", async () => {
    let joinTaken: () => void = () => {};
    const taken = new Promise<void>((resolve) => {
      joinTaken = resolve;
    });
    const { media, handlers: open } = fakeMedia((m, reply) => {
      if (m.kind === "join") joinTaken(); // taken, and not answered yet
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    const t = transport(media);
    const joining = t.join().then(
      () => "joined",
      (err: Error) => err.message,
    );
    await taken;
    await t.leave();
    const outcome = await Promise.race([
      joining,
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 1 s"), 1000).unref()),
    ]);
    assert.equal(outcome, "transport left");
    assert.equal(open.size, 0, "the session is released");
  });
});

describe("process transport agent audio", () => {
  /** 20 ms of a 300 Hz tone at 24 kHz, Opus-encoded `n` times (one packet each). */
  async function agentPackets(pool: OpusPool, n: number): Promise<Buffer[]> {
    const encoder = pool.openEncoder(24000);
    const pcm = Buffer.alloc(480 * 2);
    for (let i = 0; i < 480; i++)
      pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / 24000)), i * 2);
    const packets: Buffer[] = [];
    for (let i = 0; i < n; i++) packets.push(await pool.encode(encoder, pcm));
    pool.close(encoder);
    return packets;
  }

  it("a new track 50 behind the old one is heard from its first packet; the old track's straggler is dropped", async () => {
    const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
    const { media, handlers } = fakeMedia((m, reply) => {
      if (m.kind === "join") reply({ kind: "joined", session: m.session, identity: "gw" });
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    const drops = new Map<string, number>();
    const heard: Buffer[] = [];
    const t = new ProcessTransport(
      { url: "ws://lk", roomName: "r", token: "t" },
      { ...handlersNotingLoss(), agentAudio: (pcm) => heard.push(pcm) },
      { media, pool, drop: (r) => drops.set(r, (drops.get(r) ?? 0) + 1) },
    );
    try {
      await t.join();
      const packets = await agentPackets(pool, 20);
      const deliver = handlers.get(7) as MediaFrameHandler;
      const rtp = (generation: number, sequence: number, payload: Buffer): FromMedia => ({
        kind: "agent_rtp",
        session: 7,
        generation,
        sequence,
        timestamp: sequence * 960,
        payload,
      });
      for (let i = 0; i < 10; i++) deliver(rtp(1, 1000 + i, packets[i] as Buffer));
      // The media process hears a newer track (generation 2): its numbering 50 behind. A
      // packet the old track's reader queued just as the switch came follows its first.
      deliver(rtp(2, 960, packets[10] as Buffer));
      deliver(rtp(1, 1010, packets[0] as Buffer));
      for (let i = 1; i < 10; i++) deliver(rtp(2, 960 + i, packets[10 + i] as Buffer));
      const heardMs = () => heard.reduce((ms, pcm) => ms + pcm.length / 48, 0);
      await eventually(() => heardMs() >= 400, 2000, "20 packets' audio (the new track's too)");
      assert.equal(heardMs(), 400);
      assert.deepEqual(Object.fromEntries(drops), { agent_rtp_new_track: 1, agent_rtp_old_track: 1 });
    } finally {
      await t.leave();
      await pool.shutdown();
    }
  });
});
