/**
 * The agent's audio tracks through both room transports (the media process, rtc-node in
 * the gateway), against a real LiveKit server: the newest audio track still subscribed is
 * the one heard, so an agent that republishes its voice (LiveKit Agents does on each
 * reconnect, beside the track it had) keeps reaching the device, and when that track ends
 * the one before it is heard again (docs/media-process.md, "Media paths").
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import { AccessToken, RoomServiceClient } from "livekit-server-sdk";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { ProcessTransport } from "../src/agent/livekit/media/process-transport.ts";
import type { RoomTransport } from "../src/agent/livekit/room-transport.ts";
import { rtcNodeTransportFactory } from "../src/agent/livekit/rtc-node-transport.ts";
import { LIVEKIT_TRANSPORTS, type LiveKitTransportName } from "./support/livekit-transports.ts";
import { RoomEventsRecorder, TestAgent, toneHz } from "./support/room-participants.ts";
import { eventually } from "./support/stack.ts";
import { startTestMedia, type TestMedia } from "./support/test-media.ts";

const RATE = 24000;

/** Milliseconds of agent PCM handed up from chunk `from` on. */
function heardMs(rec: RoomEventsRecorder, from: number): number {
  return rec.pcm.slice(from).reduce((ms, b) => ms + (b.length / 2 / RATE) * 1000, 0);
}

/** The tone of the agent PCM handed up from chunk `from` on, past its first 100 ms. */
function heardHz(rec: RoomEventsRecorder, from: number): number {
  const pcm = Buffer.concat(rec.pcm.slice(from));
  const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1);
  return toneHz(samples.subarray(RATE / 10), RATE);
}

after(async () => {
  // rtc-node's native FFI runtime keeps the process alive until disposed.
  await dispose();
});

for (const kind of LIVEKIT_TRANSPORTS) {
  describe(`the agent's audio tracks over ${kind}`, () => {
    let lk: LiveKitProcess;
    let rooms: RoomServiceClient;
    let media: TestMedia;
    const left: (() => Promise<void>)[] = [];
    let n = 0;
    // The media process counts its own, media_ prefixed.
    const event = (name: string) => (kind === "process" ? `media_${name}` : name);
    const count = (name: string) => media.drops.get(event(name)) ?? 0;

    before(async () => {
      media = await startTestMedia();
      lk = await startLiveKit();
      rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
    });

    after(async () => {
      for (const leave of left) await leave();
      await media.close();
      await lk.stop();
    });

    function transport(name: LiveKitTransportName, room: string, token: string, rec: RoomEventsRecorder) {
      const join = { url: lk.url, roomName: room, token };
      if (name === "process")
        return new ProcessTransport(join, rec, { media: media.media, pool: media.pool, drop: media.drop });
      return rtcNodeTransportFactory({ drop: media.drop })(join, rec);
    }

    /** A device's transport joined, and an agent speaking on its first track. */
    async function session(): Promise<{ rec: RoomEventsRecorder; t: RoomTransport; agent: TestAgent }> {
      const room = `tracks-${kind}-${++n}`;
      await rooms.createRoom({ name: room, emptyTimeout: 30 });
      const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity: `device-${room}` });
      at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
      const rec = new RoomEventsRecorder();
      const t = transport(kind, room, await at.toJwt(), rec);
      await t.join();
      const agent = new TestAgent();
      left.push(
        () => agent.leave(),
        () => t.leave(),
      );
      await agent.join(lk, room);
      await agent.speak(600, 300);
      await eventually(() => heardMs(rec, 0) >= 300, 5000, "the agent's first track heard");
      return { rec, t, agent };
    }

    it("a track the agent republishes is heard once the old one is unpublished", async () => {
      const { rec, agent } = await session();
      const switched = count("agent_track_switched");
      // Subscribed while the first is still read: the order a republish can take.
      const second = await agent.publishVoice("agent-2");
      await eventually(() => count("agent_track_switched") > switched, 5000, "the second track subscribed");
      await agent.unpublish(agent.voice);
      const from = rec.pcm.length;
      await second.speak(1500, 500);
      await eventually(() => heardMs(rec, from) >= 1000, 5000, "the republished track heard");
      const hz = heardHz(rec, from);
      assert.ok(Math.abs(hz - 500) < 25, `heard ${hz.toFixed(0)} Hz, the new track sent 500`);
    });

    it("a newer track is heard while the first still sends; the first again once it ends", async () => {
      const { rec, agent } = await session();
      const [switched, back] = [count("agent_track_switched"), count("agent_track_back")];
      // The first track goes on sending its tone throughout (a failed test closes its source
      // under it: that rejection is this test's failure, not one of its own).
      const first = agent.speak(6000, 300);
      first.catch(() => {});
      const second = await agent.publishVoice("agent-2");
      await eventually(() => count("agent_track_switched") > switched, 5000, "the second track subscribed");
      let from = rec.pcm.length;
      await second.speak(1500, 500);
      await eventually(() => heardMs(rec, from) >= 1000, 5000, "the newer track heard");
      let hz = heardHz(rec, from);
      assert.ok(Math.abs(hz - 500) < 25, `heard ${hz.toFixed(0)} Hz, the newer track sent 500`);
      await agent.unpublish(second);
      await eventually(() => count("agent_track_back") > back, 5000, "the first track heard again");
      from = rec.pcm.length;
      await eventually(() => heardMs(rec, from) >= 1000, 5000, "the first track's tone");
      hz = heardHz(rec, from);
      assert.ok(Math.abs(hz - 300) < 25, `heard ${hz.toFixed(0)} Hz, the first track sends 300`);
      await first;
    });
  });
}
