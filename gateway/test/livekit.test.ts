/**
 * The LiveKit bridge against a real LiveKit server (built from its Go module, loopback
 * only): rooms, identities, the device's voice at the agent, close and the ghost-room
 * sweep, once per room transport. A fake of the deployed agent (support/fake-agents.ts)
 * joins each room as auto-dispatch would; the agent protocol itself is
 * livekit-agents.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import { AgentDispatchClient, RoomServiceClient } from "livekit-server-sdk";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { parseRoomName, roomName } from "../src/agent/livekit/room-names.ts";
import { sweepGhostRooms } from "../src/agent/livekit/sweeper.ts";
import { FakeAgentDispatcher } from "./support/fake-agent-dispatcher.ts";
import type { FakeAgent } from "./support/fake-agents.ts";
import { LIVEKIT_TRANSPORTS, liveKitEnv } from "./support/livekit-transports.ts";
import { TestAgent } from "./support/room-participants.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

// rtc-node's native runtime is process-wide and keeps the process alive: release it once,
// after every test of this file.
after(async () => {
  await dispose();
});

for (const transport of LIVEKIT_TRANSPORTS) {
  describe(`LiveKit rooms over ${transport} against a real LiveKit server`, () => {
    let lk: LiveKitProcess;
    let stack: Stack;
    let rooms: RoomServiceClient;
    let dispatcher: FakeAgentDispatcher;
    const agentFree = new Set<string>();

    before(async () => {
      lk = await startLiveKit();
      rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
      stack = await startStack();
      await stack.startGateway({
        ...liveKitEnv(lk, transport),
      });
      // Rooms of the load and sweep tests stay agent-free: agents there would only add load
      // (and race the sweep's deletes).
      dispatcher = new FakeAgentDispatcher(lk, {
        version: (room) => {
          const mac = parseRoomName(room)?.mac;
          return mac === undefined || agentFree.has(mac) ? undefined : "A";
        },
      });
      dispatcher.start();
    });

    after(async () => {
      await dispatcher.stop();
      await stack.stop(); // closes every session: rooms deleted
      await lk.stop();
    });

    async function deviceWithAgent(): Promise<{ device: SimulatedDevice; agent: FakeAgent; room: string }> {
      const device = await stack.device();
      const reply = await device.hello();
      const room = roomName(device.mac, reply.sessionId);
      // The hello reply comes first; the room follows.
      await waitForRoom(room);
      const agent = await dispatcher.agentIn(room);
      assert.ok(agent);
      return { device, agent, room };
    }

    async function waitForRoom(room: string): Promise<void> {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const ps = await rooms.listParticipants(room).catch(() => []);
        if (ps.some((p) => p.identity.includes(":") && p.tracks.length > 0)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the gateway did not join ${room} with a track`);
    }

    it("the device joins as its MAC with BUNNY's attributes (device-protocol.md 5.1)", async () => {
      const { device, room } = await deviceWithAgent();
      const me = (await rooms.listParticipants(room)).find((p) => p.identity === device.mac);
      assert.ok(me, "identity is the MAC with colons");
      assert.equal(me.attributes.device_mac, device.mac);
      assert.equal(me.attributes.room_type, "device_session");
      assert.equal(me.attributes.device_uuid, device.clientId.split("@@@")[2]);
    });

    it("the agent hears the device's voice", async () => {
      const { device, agent } = await deviceWithAgent();
      device.listen("realtime");
      device.talk(1500);
      await eventually(() => agent.deviceEnergy > 300, 10_000, "device voice at the agent");
    });

    it("a second agent voice in the room takes over, and the switch is counted", async () => {
      const { room } = await deviceWithAgent();
      const gw = stack.gateways[0];
      assert.ok(gw);
      // The media process counts its own (media_ prefixed); whichever voice comes second to
      // the gateway is heard from then on (livekit-agent-tracks.test.ts hears which).
      const event = transport === "process" ? "media_agent_track_switched" : "agent_track_switched";
      const counted = async () =>
        (await gw.metrics.agentEvents.get()).values.find((v) => v.labels.event === event)?.value ?? 0;
      const before = await counted();
      const second = new TestAgent();
      try {
        await second.join(lk, room);
        await eventually(async () => (await counted()) > before, 10_000, `${event} counted`);
      } finally {
        await second.leave();
      }
    });

    it("a device goodbye closes the session: the agent gets cleanup_request, and the room is deleted", async () => {
      const { device, agent, room } = await deviceWithAgent();
      await device.goodbye();
      await agent.waitFor((m) => m.type === "cleanup_request");
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
      for (const mac of ["02:00:00:00:00:aa", "02:00:00:00:00:bb", "02:00:00:00:00:cc"]) agentFree.add(mac);
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
      for (const d of devices) agentFree.add(d.mac);
      const replies = await Promise.all(devices.map((d) => d.hello()));
      await Promise.all(
        replies.map((r, i) => waitForRoom(roomName((devices[i] as SimulatedDevice).mac, r.sessionId))),
      );
      const gw = stack.gateways[0];
      assert.ok(gw);
      assert.ok(gw.gateway.sessions.size >= 10);
    });
  });
}

describe("a LiveKit server that cannot be reached", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    // Nothing listens on port 9 (discard): creating the room is refused at once.
    await stack.startGateway({
      LIVEKIT_URL: "ws://127.0.0.1:9",
      LIVEKIT_API_KEY: "k",
      LIVEKIT_API_SECRET: "s",
    });
  });
  after(async () => {
    await stack.stop();
  });

  it("the device is told goodbye, the failure is counted, and no room is counted as open", async () => {
    const gw = stack.gateways[0];
    assert.ok(gw);
    const device = await stack.device();
    await device.hello();
    // The goodbye may come before hello() resolves: look at everything received.
    await eventually(() => device.messages.some((m) => m.type === "goodbye"), 10_000, "goodbye");
    const failed = (await gw.metrics.agentEvents.get()).values.find((v) => v.labels.event === "room_failed");
    assert.equal(failed?.value, 1);
    await eventually(() => gw.gateway.sessions.size === 0, 5000, "the session released");
    // The gauge of joined rooms: a room that never opened must not be taken off it. The
    // bridge settles the gauge before its close does any I/O, so it is final by now.
    assert.equal((await gw.metrics.agentRooms.get()).values[0]?.value, 0);
  });
});

describe("agent dispatch by name (LiveKit Agents)", () => {
  it("creates a dispatch for the configured agent name in the session's room", async () => {
    const lk = await startLiveKit();
    const stack = await startStack();
    try {
      await stack.startGateway({
        ...liveKitEnv(lk),
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
