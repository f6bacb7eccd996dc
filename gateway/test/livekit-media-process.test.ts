/**
 * The `process` room transport against a real LiveKit server and the real media process
 * (built by scripts/build-media.sh): the device's Opus reaches an rtc-node agent decodable
 * as the signal that was sent, the agent's voice comes back as 24 kHz PCM (to its last
 * packet when the agent falls silent), data, attributes and text streams pass both ways,
 * and each failure (server unreachable, token refused, room deleted, media process killed)
 * is reported within 2 s with nothing left behind.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import { AccessToken, RoomServiceClient } from "livekit-server-sdk";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { rms } from "../../tools/sim/speech-signal.ts";
import type { MediaProcess } from "../src/agent/livekit/media/media-process.ts";
import { ProcessTransport } from "../src/agent/livekit/media/process-transport.ts";
import { MEDIA_HANG_TIMEOUT_MS, MEDIA_PING_INTERVAL_MS } from "../src/agent/livekit/transports.ts";
import type { OpusPool } from "../src/audio/opus-pool.ts";
import { RoomEventsRecorder, TestAgent, toneHz } from "./support/room-participants.ts";
import { eventually } from "./support/stack.ts";
import { startTestMedia, type TestMedia } from "./support/test-media.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

describe("LiveKit through the media process", () => {
  let lk: LiveKitProcess;
  let testMedia: TestMedia;
  let pool: OpusPool;
  let media: MediaProcess;
  let rooms: RoomServiceClient;
  let drops: Map<string, number>;
  const agents: TestAgent[] = [];
  const transports: ProcessTransport[] = [];
  let n = 0;

  before(async () => {
    testMedia = await startTestMedia();
    ({ media, pool, drops } = testMedia);
    lk = await startLiveKit();
    rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
  });

  after(async () => {
    await Promise.all(transports.map((t) => t.leave()));
    await Promise.all(agents.map((a) => a.leave()));
    await testMedia.close();
    await lk.stop();
    // rtc-node's native FFI runtime (the test agents) keeps the process alive until disposed.
    await dispose();
  });

  async function token(room: string, secret = lk.apiSecret, identity = `device-${room}`): Promise<string> {
    const at = new AccessToken(lk.apiKey, secret, { identity });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    return at.toJwt();
  }

  async function session(
    url = lk.url,
  ): Promise<{ room: string; t: ProcessTransport; rec: RoomEventsRecorder }> {
    const room = `media-test-${++n}`;
    await rooms.createRoom({ name: room, emptyTimeout: 30 });
    const rec = new RoomEventsRecorder();
    const t = new ProcessTransport({ url, roomName: room, token: await token(room) }, rec, {
      media,
      pool,
      drop: testMedia.drop,
    });
    transports.push(t);
    return { room, t, rec };
  }

  async function withAgent(): Promise<{
    room: string;
    t: ProcessTransport;
    rec: RoomEventsRecorder;
    agent: TestAgent;
  }> {
    const s = await session();
    await s.t.join();
    const agent = new TestAgent();
    agents.push(agent);
    await agent.join(lk, s.room);
    await eventually(() => s.rec.joined.length > 0, 5000, "the agent seen joining");
    return { ...s, agent };
  }

  /** A session joined, and a second media-process participant in its room. */
  async function withMediaPeer(name: string): Promise<{ rec: RoomEventsRecorder; peer: ProcessTransport }> {
    const { room, t, rec } = await session();
    await t.join();
    const peer = new ProcessTransport(
      { url: lk.url, roomName: room, token: await token(room, lk.apiSecret, `${name}-${room}`) },
      new RoomEventsRecorder(),
      { media, pool, drop: () => {} },
    );
    transports.push(peer);
    await peer.join();
    return { rec, peer };
  }

  /** The LiveKit server's own silence frames the gateway has counted (and not decoded). */
  const serverBlanks = () => drops.get("agent_rtp_server_blank") ?? 0;

  it("the device's Opus reaches the agent unchanged and decodes to the tone that was sent", async () => {
    const { t, agent } = await withAgent();
    const encoder = new OpusEncoder(16000, 1);
    const pcm = Buffer.alloc(960 * 2);
    // 60 ms packets at the device's pace: a 440 Hz tone.
    for (let k = 0; k < 40; k++) {
      for (let i = 0; i < 960; i++)
        pcm.writeInt16LE(Math.round(6000 * Math.sin((2 * Math.PI * 440 * (k * 960 + i)) / 16000)), i * 2);
      t.pushOpus({ opus: encoder.encode(pcm), durationMs: 60, sampleRate: 16000, sequence: k + 1 });
      await new Promise((r) => setTimeout(r, 60));
    }
    await eventually(
      () => agent.heard.some((f) => rms(Buffer.from(f.buffer, f.byteOffset, f.byteLength)) > 1000),
      5000,
      "voice at the agent",
    );
    const loud = agent.heard.filter((f) => rms(Buffer.from(f.buffer, f.byteOffset, f.byteLength)) > 1000);
    const all = new Int16Array(loud.reduce((s, f) => s + f.length, 0));
    let at = 0;
    for (const f of loud) {
      all.set(f, at);
      at += f.length;
    }
    const hz = toneHz(all, 16000);
    assert.ok(Math.abs(hz - 440) < 25, `the agent heard ${hz.toFixed(0)} Hz, sent 440`);
    assert.ok(loud.length * 10 >= 1500, `the agent heard ${loud.length * 10} ms of the 2400 ms sent`);
  });

  it("the agent's voice comes back as 24 kHz PCM of the tone it sent", async () => {
    const { rec, agent } = await withAgent();
    await agent.speak(1500, 300);
    await eventually(
      () => rec.pcm.reduce((s, b) => s + b.length, 0) >= 24000 * 2,
      5000,
      "one second of agent voice",
    );
    const pcm = Buffer.concat(rec.pcm);
    const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1);
    const hz = toneHz(samples.subarray(4800, 24000), 24000);
    assert.ok(Math.abs(hz - 300) < 20, `heard ${hz.toFixed(0)} Hz, sent 300`);
  });

  it("the agent's 20 ms packets are decoded a 60 ms frame at a time", async () => {
    const { rec, agent } = await withAgent();
    // speak returns with up to a second still in the source's queue; the source goes on
    // sending 20 ms packets after that (of silence once its queue is empty).
    await agent.speak(3000, 300);
    // Once the burst is under way (its first packet is decoded alone, the next two together).
    await eventually(() => rec.pcm.length >= 5, 5000, "the agent's first groups");
    const from = rec.pcm.length;
    await eventually(() => rec.pcm.length - from >= 15, 5000, "15 decoded groups while speaking");
    const sizes = rec.pcm.slice(from, from + 15).map((b) => b.length);
    const packet = 480 * 2; // 20 ms at 24 kHz
    for (const size of sizes) assert.equal(size % packet, 0, `a group of whole packets: ${size}`);
    const frames = sizes.filter((size) => size === 3 * packet).length;
    assert.ok(frames >= 0.8 * sizes.length, `groups of 60 ms: ${sizes.join(", ")}`);
  });

  it("an agent that falls silent (DTX: nothing sent): the end of its words is still decoded", async () => {
    // The gateway holds a frame's packets until the one that completes it comes
    // (decode-groups.ts); when none comes, what it holds must still be decoded. A second
    // media-process participant stands in for the agent: it sends 20 ms packets and then
    // nothing at all, as DTX does (an rtc-node source sends silence instead).
    const before = serverBlanks();
    const { rec, peer: talker } = await withMediaPeer("dtx");
    await eventually(() => serverBlanks() > before, 5000, "the talker's track subscribed");
    const encoder = new OpusEncoder(16000, 1);
    const pcm = Buffer.alloc(320 * 2);
    // 8 packets: 1 alone, 2-3 and 4-6 completing frames, and 7-8 that no packet completes.
    const PACKETS = 8;
    for (let k = 0; k < PACKETS; k++) {
      for (let i = 0; i < 320; i++)
        pcm.writeInt16LE(Math.round(6000 * Math.sin((2 * Math.PI * 300 * (k * 320 + i)) / 16000)), i * 2);
      talker.pushOpus({ opus: encoder.encode(pcm), durationMs: 20, sampleRate: 16000, sequence: k + 1 });
      await new Promise((r) => setTimeout(r, 20));
    }
    const decodedBytes = () => rec.pcm.reduce((sum, b) => sum + b.length, 0);
    const packetBytes = 480 * 2; // 20 ms at 24 kHz
    // Within 25 ms of the last packet, and never if the held packets waited for another.
    await eventually(() => decodedBytes() >= PACKETS * packetBytes, 2000, "every packet decoded");
    assert.equal(decodedBytes(), PACKETS * packetBytes);
  });

  it("the server's own silence frames before the agent's first packet are counted, not decoded", async () => {
    // The server primes a Go SDK subscriber's track with silence frames until the publisher
    // sends; a second media-process participant publishes a track and never sends.
    const before = serverBlanks();
    const { rec } = await withMediaPeer("silent");
    await eventually(() => serverBlanks() - before >= 25, 5000, "half a second of LiveKit's silence frames");
    assert.equal(rec.pcm.length, 0, "nothing decoded from them");
  });

  it("data with a topic, attributes, text streams and leaving pass through", async () => {
    const { t, rec, agent } = await withAgent();
    await t.sendData(Buffer.from('{"type":"hello"}'), "gateway");
    await eventually(() => agent.data.length > 0, 5000, "data at the agent");
    assert.deepEqual(agent.data[0], { text: '{"type":"hello"}', topic: "gateway" });
    const lp = agent.room.localParticipant;
    assert.ok(lp);
    await lp.publishData(Buffer.from('{"type":"tts"}'), { reliable: true, topic: "emotion" });
    await eventually(() => rec.received.length > 0, 5000, "data from the agent");
    assert.deepEqual(rec.received[0], { payload: '{"type":"tts"}', topic: "emotion" });
    await lp.setAttributes({ "lk.agent.state": "speaking" });
    await eventually(
      () => rec.attributes.some((a) => a["lk.agent.state"] === "speaking"),
      5000,
      "attributes",
    );
    await lp.sendText("héllo wörld", {
      topic: "lk.transcription",
      attributes: { "lk.transcription_final": "true" },
    });
    await eventually(() => rec.texts.some((c) => c.done), 5000, "the text stream's end");
    assert.equal(rec.texts.map((c) => c.text).join(""), "héllo wörld");
    assert.equal(rec.texts[0]?.attributes["lk.transcription_final"], "true");
    await agent.leave();
    await eventually(() => rec.left.length > 0, 5000, "the agent leaving");
  });

  it("LiveKit unreachable: join fails within 2 s and the session is released", async () => {
    const { t } = await session("ws://127.0.0.1:9");
    const sessions = media.sessions;
    const t0 = performance.now();
    await assert.rejects(t.join(), /join failed/);
    assert.ok(performance.now() - t0 < 2000, `took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(media.sessions, sessions);
  });

  it("a token the server refuses: join fails within 2 s", async () => {
    const room = `media-test-${++n}`;
    const rec = new RoomEventsRecorder();
    const t = new ProcessTransport(
      { url: lk.url, roomName: room, token: await token(room, "x".repeat(43)) },
      rec,
      { media, pool, drop: () => {} },
    );
    transports.push(t);
    const t0 = performance.now();
    await assert.rejects(t.join(), /join failed/);
    assert.ok(performance.now() - t0 < 2000, `took ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it("the room deleted under the session: disconnected within 2 s", async () => {
    const { room, rec } = await withAgent();
    const t0 = performance.now();
    await rooms.deleteRoom(room);
    await eventually(() => rec.lost.length > 0, 2000, "disconnected");
    assert.ok((rec.lost[0]?.at ?? 0) - t0 < 2000);
  });

  it("the media process killed: every session is told within 2 s, it restarts, nothing leaks", async () => {
    const live = await Promise.all([withAgent(), withAgent(), withAgent()]);
    const before = media.pid;
    const t0 = performance.now();
    media.killForTest();
    await eventually(() => live.every((s) => s.rec.lost.length === 1), 2000, "every session disconnected");
    assert.ok(live.every((s) => (s.rec.lost[0]?.at ?? 0) - t0 < 2000));
    assert.equal(media.sessions, 0);
    for (const s of live) await s.t.leave();
    await eventually(() => media.running && media.pid !== before, 5000, "the media process restarted");
    const again = await withAgent();
    await again.agent.speak(400);
    await eventually(() => again.rec.pcm.length > 0, 5000, "voice through the new process");
  });

  it("a session left only once the media process has restarted is released at once", async () => {
    // Its participant went with the old process: nothing in the new one can confirm its
    // leave, so waiting for a confirmation is waiting out the leave timeout (5 s).
    const s = await withAgent();
    const before = media.pid;
    media.killForTest();
    await eventually(() => s.rec.lost.length === 1, 2000, "disconnected");
    await eventually(() => media.running && media.pid !== before, 5000, "the media process restarted");
    const unknown = drops.get("media_frame_unknown_session") ?? 0;
    const t0 = performance.now();
    await s.t.leave();
    const took = performance.now() - t0;
    assert.ok(took < 1000, `leave took ${took.toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(
      drops.get("media_frame_unknown_session") ?? 0,
      unknown,
      "no answer for a session of the old process",
    );
  });

  it("the media process frozen (SIGSTOP): every session is told within 4.5 s, it restarts", async (t) => {
    const live = await Promise.all([withAgent(), withAgent()]);
    const before = media.pid as number;
    const t0 = performance.now();
    process.kill(before, "SIGSTOP");
    // Up to one interval to the first ping it cannot answer, then the hang timeout.
    const bound = MEDIA_HANG_TIMEOUT_MS + MEDIA_PING_INTERVAL_MS;
    await eventually(
      () => live.every((s) => s.rec.lost.length === 1),
      bound + 2000,
      "every session disconnected",
    );
    const told = live.map((s) => Math.round((s.rec.lost[0]?.at ?? 0) - t0));
    t.diagnostic(`sessions told ${told.join(", ")} ms after the SIGSTOP`);
    // 500 ms for the timer's own lateness on a loaded machine.
    assert.ok(
      told.every((ms) => ms <= bound + 500),
      `told after ${told.join(", ")} ms`,
    );
    assert.equal(drops.get("media_hung"), 1);
    for (const s of live) await s.t.leave();
    await eventually(() => media.running && media.pid !== before, 5000, "the media process restarted");
    const again = await withAgent();
    await again.agent.speak(400);
    await eventually(() => again.rec.pcm.length > 0, 5000, "voice through the new process");
  });

  it("leaving releases the session in the media process and its decoder in the pool", async () => {
    const { t, rec, agent } = await withAgent();
    await agent.speak(200);
    await eventually(() => rec.pcm.length > 0, 5000, "agent voice decoded");
    const streams = pool.openStreams;
    const sessions = media.sessions;
    await t.leave();
    assert.equal(media.sessions, sessions - 1);
    assert.equal(pool.openStreams, streams - 1);
  });
});
