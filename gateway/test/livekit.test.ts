/**
 * The LiveKit bridge against a real LiveKit server (built from its Go module, loopback
 * only). A test agent, an rtc-node participant, joins each device's room as a hosted
 * agent would.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  dispose,
  LocalAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from "@livekit/rtc-node";
import { AccessToken, AgentDispatchClient, RoomServiceClient } from "livekit-server-sdk";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { rms } from "../../tools/sim/speech-signal.ts";
import { roomName } from "../src/agent/livekit/room-names.ts";
import { sweepGhostRooms } from "../src/agent/livekit/sweeper.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

/** A participant that plays the agent: hears the device, speaks, talks JSON on the data channel. */
class TestAgent {
  readonly room = new Room();
  readonly data: Record<string, unknown>[] = [];
  deviceEnergy = 0;
  #source = new AudioSource(24000, 1);

  async join(lk: LiveKitProcess, room: string): Promise<void> {
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity: `agent-${room.slice(-6)}` });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    this.room.on(RoomEvent.DataReceived, (payload) =>
      this.data.push(JSON.parse(Buffer.from(payload).toString())),
    );
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind !== TrackKind.KIND_AUDIO) return;
      void (async () => {
        for await (const frame of new AudioStream(track, { sampleRate: 16000, numChannels: 1 })) {
          this.deviceEnergy = Math.max(
            this.deviceEnergy,
            rms(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength)),
          );
        }
      })().catch(() => {});
    });
    await this.room.connect(lk.url, await at.toJwt(), { autoSubscribe: true, dynacast: false });
    const opts = new TrackPublishOptions();
    opts.source = TrackSource.SOURCE_MICROPHONE;
    await this.room.localParticipant?.publishTrack(
      LocalAudioTrack.createAudioTrack("agent", this.#source),
      opts,
    );
  }

  /** Speaks a 300 Hz tone for `ms`, then silence long enough to end the turn. */
  async speak(ms: number): Promise<void> {
    for (let t = 0; t < ms + 600; t += 20) {
      const data = new Int16Array(480);
      if (t < ms)
        for (let i = 0; i < 480; i++)
          data[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * (t * 24 + i)) / 24000));
      await this.#source.captureFrame(new AudioFrame(data, 24000, 1, 480));
    }
  }

  send(message: Record<string, unknown>): Promise<void> {
    return (
      this.room.localParticipant?.publishData(new TextEncoder().encode(JSON.stringify(message)), {
        reliable: true,
      }) ?? Promise.resolve()
    );
  }

  async leave(): Promise<void> {
    this.room.removeAllListeners();
    await this.#source.close().catch(() => {});
    await this.room.disconnect().catch(() => {});
  }
}

// rtc-node's native runtime is process-wide and keeps the process alive: release it once,
// after every test of this file.
after(async () => {
  await dispose();
});

describe("LiveKit bridge against a real LiveKit server", () => {
  let lk: LiveKitProcess;
  let stack: Stack;
  let rooms: RoomServiceClient;
  const agents: TestAgent[] = [];

  before(async () => {
    lk = await startLiveKit();
    rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
    stack = await startStack();
    await stack.startGateway({
      LIVEKIT_URL: lk.url,
      LIVEKIT_API_KEY: lk.apiKey,
      LIVEKIT_API_SECRET: lk.apiSecret,
    });
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.leave()));
    await stack.stop(); // closes every session: rooms deleted
    await lk.stop();
  });

  async function deviceWithAgent(): Promise<{ device: SimulatedDevice; agent: TestAgent; room: string }> {
    const device = await stack.device();
    const reply = await device.hello();
    const room = roomName(device.mac, reply.sessionId);
    // The hello reply comes first; the room follows.
    await waitForRoom(room);
    const agent = new TestAgent();
    agents.push(agent);
    await agent.join(lk, room);
    await eventually(
      () => agent.data.some((m) => m.type === "session_start"),
      10_000,
      "session_start from the gateway",
    ).catch(() => {});
    return { device, agent, room };
  }

  async function waitForRoom(room: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const ps = await rooms.listParticipants(room).catch(() => []);
      if (ps.some((p) => p.identity.startsWith("device-") && p.tracks.length > 0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the gateway did not join ${room} with a track`);
  }

  it("the agent hears the device's voice, and the device hears the agent, framed by tts start and stop", async () => {
    const { device, agent } = await deviceWithAgent();
    device.listen("realtime");
    device.talk(1500);
    await eventually(() => agent.deviceEnergy > 300, 10_000, "device voice at the agent");
    let loudest = 0;
    device.on("pcm", (pcm: Buffer) => {
      loudest = Math.max(loudest, rms(pcm));
    });
    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    await agent.speak(900);
    await stop;
    assert.ok(device.stats.framesReceived >= 10, `device got ${device.stats.framesReceived} frames`);
    assert.ok(loudest > 1000, `agent tone heard (rms ${loudest.toFixed(0)})`);
    assert.deepEqual(device.stats.errors, {});
  });

  it("an MCP tool call from the agent reaches the device and its answer comes back by JSON-RPC id", async () => {
    const { device, agent } = await deviceWithAgent();
    device.on("message", (m: Record<string, unknown>) => {
      const payload = m.payload as { id?: number; method?: string } | undefined;
      if (m.type === "mcp" && payload?.method === "tools/call") {
        device.send({
          session_id: device.session?.sessionId ?? "",
          type: "mcp",
          payload: {
            jsonrpc: "2.0",
            id: payload.id ?? 0,
            result: { content: [{ type: "text", text: '{"volume":40}' }], isError: false },
          },
        });
      }
    });
    await agent.send({ type: "mcp_call", request_id: "r-1", name: "self.get_device_status", arguments: {} });
    await eventually(
      () => agent.data.some((m) => m.type === "mcp_result" && m.request_id === "r-1"),
      10_000,
      "mcp_result",
    );
    const result = agent.data.find((m) => m.type === "mcp_result") as { ok: boolean };
    assert.equal(result.ok, true);
  });

  it("the agent's transcript, reply text and emotion reach the device as stt, tts sentence_start and llm", async () => {
    const { device, agent } = await deviceWithAgent();
    const stt = device.waitForMessage((m) => m.type === "stt");
    const sentence = device.waitForMessage((m) => m.type === "tts" && m.state === "sentence_start");
    const llm = device.waitForMessage((m) => m.type === "llm");
    await agent.send({ type: "transcript", text: "what's the weather", final: true });
    await agent.send({ type: "reply_text", text: "Sunny all day." });
    await agent.send({ type: "emotion", emotion: "happy", text: "😀" });
    assert.equal((await stt).text, "what's the weather");
    assert.equal((await sentence).text, "Sunny all day.");
    const face = await llm;
    assert.equal(face.emotion, "happy");
    assert.equal(face.session_id, device.session?.sessionId);
  });

  it("a device abort reaches the agent", async () => {
    const { device, agent } = await deviceWithAgent();
    device.send({ session_id: device.session?.sessionId ?? "", type: "abort", reason: "wake_word_detected" });
    await eventually(() => agent.data.some((m) => m.type === "abort"), 10_000, "abort at the agent");
  });

  it("a device goodbye closes the session: the agent is told, and the room is deleted", async () => {
    const { device, agent, room } = await deviceWithAgent();
    await device.goodbye();
    await eventually(() => agent.data.some((m) => m.type === "end_of_session"), 10_000, "end_of_session");
    const deadline = Date.now() + 10_000;
    while ((await rooms.listRooms([room])).length > 0) {
      if (Date.now() > deadline) throw new Error("room not deleted");
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it("the ghost-room sweep deletes only this instance's orphans", async () => {
    const gw = stack.gateways[0];
    assert.ok(gw);
    const me = { instanceId: 1, bootId: gw.bootId };
    const names = {
      oldBoot: roomName("02:00:00:00:00:aa", "1-zzzz0000-0123456789abcdef"),
      deadSession: roomName("02:00:00:00:00:bb", `1-${gw.bootId}-0123456789abcdef`),
      otherInstance: roomName("02:00:00:00:00:cc", "2-yyyy0000-0123456789abcdef"),
      foreign: "someone-elses-room",
    };
    for (const name of Object.values(names)) await rooms.createRoom({ name, emptyTimeout: 300 });
    const deleted = await sweepGhostRooms({
      me,
      listRooms: async () => (await rooms.listRooms()).map((r) => r.name),
      deleteRoom: (n) => rooms.deleteRoom(n),
      isLive: (sid) => gw.gateway.sessions.all().some((s) => s.sessionId === sid),
    });
    assert.deepEqual(deleted.sort(), [names.deadSession, names.oldBoot].sort());
    const left = (await rooms.listRooms()).map((r) => r.name);
    assert.ok(left.includes(names.otherInstance) && left.includes(names.foreign));
    for (const s of gw.gateway.sessions.all())
      assert.ok(left.includes(roomName(s.client.mac, s.sessionId)), "live rooms kept");
    await rooms.deleteRoom(names.otherInstance);
    await rooms.deleteRoom(names.foreign);
  });

  it("10 sessions in parallel each get their own room with the device's track", async () => {
    const devices = await Promise.all(Array.from({ length: 10 }, () => stack.device()));
    const replies = await Promise.all(devices.map((d) => d.hello()));
    await Promise.all(
      replies.map((r, i) => waitForRoom(roomName((devices[i] as SimulatedDevice).mac, r.sessionId))),
    );
    const gw = stack.gateways[0];
    assert.ok(gw);
    assert.ok(gw.gateway.sessions.size >= 10);
  });
});

describe("agent dispatch by name (LiveKit Agents)", () => {
  it("creates a dispatch for the configured agent name in the session's room", async () => {
    const lk = await startLiveKit();
    const stack = await startStack();
    try {
      await stack.startGateway({
        LIVEKIT_URL: lk.url,
        LIVEKIT_API_KEY: lk.apiKey,
        LIVEKIT_API_SECRET: lk.apiSecret,
        AGENT_NAME: "voice-agent",
      });
      const device = await stack.device();
      const reply = await device.hello();
      const room = roomName(device.mac, reply.sessionId);
      const dispatcher = new AgentDispatchClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
      const deadline = Date.now() + 10_000;
      let names: string[] = [];
      while (Date.now() < deadline) {
        names = (await dispatcher.listDispatch(room).catch(() => [])).map((d) => d.agentName);
        if (names.includes("voice-agent")) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // The server also lists its own default (unnamed) dispatch; ours is the named one.
      assert.deepEqual(
        names.filter((n) => n !== ""),
        ["voice-agent"],
      );
    } finally {
      await stack.stop();
      await lk.stop();
    }
  });
});
