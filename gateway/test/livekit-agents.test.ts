/**
 * The deployed agent's protocol end to end: simulated devices, the real broker, a gateway,
 * a real LiveKit server, and faithful fakes of both agent versions (support/fake-agents.ts),
 * which the fakes' dispatcher sends into every new room as auto-dispatch would. Runs once
 * per room transport (support/livekit-transports.ts).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import type { DeviceMessage, SimulatedDevice } from "../../tools/sim/device.ts";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { parseRoomName, roomName } from "../src/agent/livekit/room-names.ts";
import { BATTERY, serveDeviceTools } from "./support/device-tools.ts";
import { FakeAgentDispatcher } from "./support/fake-agent-dispatcher.ts";
import { type AgentVersion, FakeAgent } from "./support/fake-agents.ts";
import { LIVEKIT_TRANSPORTS, liveKitEnv } from "./support/livekit-transports.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

const IDLE_TIMEOUT_MS = 6000;
const LATE_SIGNAL_WINDOW_MS = 15_000;

after(async () => {
  await dispose();
});

const tts = (device: SimulatedDevice, state: string) =>
  device.messages.filter((m) => m.type === "tts" && m.state === state).length;

for (const transport of LIVEKIT_TRANSPORTS) {
  describe(`the deployed agent's protocol over ${transport} (faithful fakes, real LiveKit server)`, () => {
    let lk: LiveKitProcess;
    let stack: Stack;
    let dispatcher: FakeAgentDispatcher;
    const versions = new Map<string, AgentVersion>();
    let devices: SimulatedDevice[] = [];

    before(async () => {
      lk = await startLiveKit();
      stack = await startStack();
      await stack.startGateway({
        ...liveKitEnv(lk, transport),
        IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
        // The held data of "late on a lagging data channel" is released after the abort has
        // gone round the device, the gateway and the agent; on a loaded machine that once
        // took over the default 2 s. The window itself is tested in agent-turns.test.ts.
        AGENT_LATE_SIGNAL_MS: String(LATE_SIGNAL_WINDOW_MS),
      });
      dispatcher = new FakeAgentDispatcher(lk, {
        version: (room) => versions.get(parseRoomName(room)?.mac ?? "") ?? "A",
      });
      dispatcher.start();
    });

    // Each test's device goes when the test ends: sessions left streaming would load the
    // machine for the tests that follow.
    afterEach(async () => {
      await Promise.all(devices.map((d) => d.close()));
      devices = [];
    });

    after(async () => {
      await dispatcher.stop();
      await stack.stop();
      await lk.stop();
    });

    /** A device in session with an agent of `version`; streaming silence unless `quiet`. */
    async function session(
      version: AgentVersion,
      quiet = false,
    ): Promise<{ device: SimulatedDevice; agent: FakeAgent }> {
      const device = await stack.device();
      devices.push(device);
      versions.set(device.mac, version);
      const reply = await device.hello();
      if (quiet)
        device.sendFrame(); // the UDP address is proven, then nothing
      else {
        device.listen("auto");
        device.talk(0); // auto mode: the microphone streams (silence) while listening
      }
      const agent = await dispatcher.agentIn(roomName(device.mac, reply.sessionId));
      assert.ok(agent, `agent ${version} joined`);
      return { device, agent };
    }

    /**
     * The greeting has been heard to its end. It may have ended before the test got its
     * agent back (the agent's join can resolve late on a loaded machine): a past stop counts.
     */
    async function greeted(device: SimulatedDevice): Promise<void> {
      if (tts(device, "stop") > 0) return;
      await device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    }

    /** The stack's (one) gateway's `gateway_agent_events_total` for `event`, 0 before any. */
    async function agentEventCount(event: string): Promise<number> {
      const gw = stack.gateways[0];
      assert.ok(gw);
      return (await gw.metrics.agentEvents.get()).values.find((v) => v.labels.event === event)?.value ?? 0;
    }

    it("Agent A greets a device that has not spoken, on agent_ready, once", async () => {
      const { device, agent } = await session("A");
      await greeted(device);
      assert.equal(agent.greetings, 1);
      assert.ok(device.stats.framesReceived >= 5, `greeting frames: ${device.stats.framesReceived}`);
      assert.equal(agent.received.filter((m) => m.type === "agent_ready").length, 1);
      assert.equal(agent.received.filter((m) => m.type === "start_greeting").length, 0);
      assert.equal(tts(device, "start"), 1);
      assert.equal(tts(device, "stop"), 1);
      assert.deepEqual(device.stats.errors, {});
    });

    it("Agent B joins the <session>_<mac>_conversation room and greets on agent_ready", async () => {
      const { device, agent } = await session("B");
      await greeted(device);
      assert.equal(agent.greetings, 1);
      assert.equal(agent.received.find((m) => m.type === "device_info")?.device_mac, device.mac);
    });

    it("a reply is framed by tts start and stop exactly once, though both message and attribute say so", async () => {
      const { device, agent } = await session("B");
      await greeted(device);
      const frames = device.stats.framesReceived;
      const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
      assert.equal(await agent.speak(1200), "done");
      await stop;
      // Let any late signal or tail arrive: it must not frame a second turn.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(tts(device, "start"), 2);
      assert.equal(tts(device, "stop"), 2);
      assert.ok(
        device.stats.framesReceived - frames >= 15,
        `reply frames ${device.stats.framesReceived - frames}`,
      );
      assert.deepEqual(device.stats.errors, {});
    });

    it("a device abort reaches the agent as abort_playback, stops the audio, and it stays stopped", async () => {
      const { device, agent } = await session("A");
      await greeted(device);
      const speaking = agent.speak(4000);
      await device.waitForMessage((m) => m.type === "tts" && m.state === "start");
      await device.waitForAudio(5);
      const stopped = device.waitForMessage((m) => m.type === "tts" && m.state === "stop");
      device.send({ session_id: device.session?.sessionId ?? "", type: "abort" });
      await stopped;
      await agent.waitFor((m) => m.type === "abort_playback");
      assert.equal(await speaking, "interrupted");
      const framesAtStop = device.stats.framesReceived;
      const startsAtStop = tts(device, "start");
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(device.stats.framesReceived, framesAtStop, "no audio after the abort");
      assert.equal(tts(device, "start"), startsAtStop, "no tts start after the abort");
      assert.deepEqual(device.stats.errors, {});
      // The agent's next turn plays again.
      const next = device.waitForMessage((m) => m.type === "tts" && m.state === "start");
      await agent.speak(500);
      await next;
    });

    it("the aborted reply's speech_created, late on a lagging data channel, does not start it again", async () => {
      const { device, agent } = await session("A");
      await greeted(device);
      const late = () => agentEventCount("agent_signal_late");
      const lateBefore = await late();
      // Its attribute and voice reach the gateway at once, its data messages only after the
      // device's abort: the reply's speech_created and agent_state_changed come late.
      agent.holdData();
      const speaking = agent.speak(4000);
      await device.waitForMessage((m) => m.type === "tts" && m.state === "start");
      await device.waitForAudio(5);
      const stopped = device.waitForMessage((m) => m.type === "tts" && m.state === "stop");
      device.send({ session_id: device.session?.sessionId ?? "", type: "abort" });
      await stopped;
      assert.equal(await speaking, "interrupted");
      const framesAtStop = device.stats.framesReceived;
      const startsAtStop = tts(device, "start");
      const released = await agent.releaseData();
      // The interrupted reply's data-channel signals into speaking, each dropped as late
      // (turns.ts): speech_created, and agent_state_changed unless A's 350 ms debounce
      // dropped it (the greeting's change to listening can be that recent).
      const intoSpeaking = released.filter(
        (m) =>
          m.type === "speech_created" ||
          (m.type === "agent_state_changed" && (m.data as { new_state?: unknown }).new_state === "speaking"),
      ).length;
      assert.ok(intoSpeaking >= 1, "the reply's speech_created was held");
      await eventually(
        async () => (await late()) - lateBefore === intoSpeaking,
        5000,
        `${intoSpeaking} late signals counted`,
      );
      assert.equal(tts(device, "start"), startsAtStop, "no tts start after the abort");
      assert.equal(device.stats.framesReceived, framesAtStop, "no audio after the abort");
      // The agent's next reply plays.
      const next = device.waitForMessage((m) => m.type === "tts" && m.state === "start");
      await agent.speak(500);
      await next;
    });

    it("Agent B's volume calls reach the device: set, two quick ups debounced into one, an up after the buttons", async () => {
      const { device, agent } = await session("B");
      const tools = serveDeviceTools(device, 50);
      await agent.tools.call("self_set_volume", { volume: 35 });
      await eventually(() => tools.volume === 35, 10_000, "volume 35");
      await agent.tools.call("self_volume_up", { step: 10 });
      await agent.tools.call("self_volume_up", { step: 10 });
      await eventually(() => tools.volume === 55, 10_000, "volume 55");
      // The user turns the device down with its buttons, which tell no one; "louder" then
      // starts from the device's volume, not from the 55 the gateway set.
      tools.volume = 20;
      await agent.tools.call("self_volume_up", { step: 10 });
      await eventually(() => tools.volume !== 20, 10_000, "a volume change");
      const sets = tools.calls.filter((c) => c.name === "self.audio_speaker.set_volume");
      assert.deepEqual(
        sets.map((c) => c.arguments.volume),
        [35, 55, 30],
      );
      tools.stop();
    });

    it("Agent B's battery call gets the device's answer back, with its request id, well within its 10 s", async () => {
      const { device, agent } = await session("B");
      const tools = serveDeviceTools(device);
      const started = Date.now();
      const answer = (await agent.tools.call("self_get_battery_status", {}, true)) as {
        result?: { content?: { text?: string }[] };
      };
      assert.ok(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`);
      assert.deepEqual(JSON.parse(answer.result?.content?.[0]?.text ?? "null"), BATTERY);
      assert.deepEqual(
        tools.calls.map((c) => c.name),
        ["self.battery.get_status"],
      );
      tools.stop();
    });

    it("emotions reach the device's face; transcripts reach it once, by message or text stream", async () => {
      const { device, agent } = await session("A");
      const face = device.waitForMessage((m) => m.type === "llm");
      await agent.emotion("happy", "😊");
      const llm = await face;
      assert.equal(llm.emotion, "happy");
      assert.equal(llm.session_id, device.session?.sessionId);
      const stt = device.waitForMessage((m) => m.type === "stt");
      await agent.transcribed("what's the weather", device.mac);
      assert.equal((await stt).text, "what's the weather");
      const sentence = device.waitForMessage((m) => m.type === "tts" && m.state === "sentence_start");
      await agent.texts.said("Sunny all day.");
      assert.equal((await sentence).text, "Sunny all day.");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(device.messages.filter((m: DeviceMessage) => m.type === "stt").length, 1);
    });

    it("the framework's transcription stream alone gives the device the user's stt, not a subtitle", async () => {
      const { device, agent } = await session("A");
      const stt = device.waitForMessage((m) => m.type === "stt");
      await agent.transcribed("tell me a story", device.mac, true);
      assert.equal((await stt).text, "tell me a story");
      assert.equal(device.messages.filter((m) => m.type === "tts" && m.text === "tell me a story").length, 0);
    });

    it("a transcription stream that fails shows the device nothing; the next one shows", async () => {
      const { device, agent } = await session("A");
      await agent.texts.saidThenFailed("Half a sen", "interrupted");
      const sentence = device.waitForMessage((m) => m.type === "tts" && m.state === "sentence_start");
      await agent.texts.said("A whole sentence.");
      assert.equal((await sentence).text, "A whole sentence.");
      assert.equal(device.messages.filter((m) => m.text === "Half a sen").length, 0);
    });

    it("transcriptions an agent leaves open are released when it goes: the next agent's are shown", async () => {
      const { device, agent } = await session("A");
      const released = () => agentEventCount("agent_text_sender_left");
      const before = await released();
      // As many as a session holds open (transcription.ts MAX_OPEN_STREAMS), of the user's
      // words, which the framework sends on the device's behalf. rtc-node's SDK fails the
      // agent's own open streams when it leaves (its identity sent them), never these; the
      // media process's SDK fails neither.
      for (let i = 0; i < 16; i++) await agent.texts.transcribing(`words ${i}`, device.mac);
      // The agent's data channel is ordered: once its next message reaches the device, the
      // streams have reached the gateway (while this agent was the only one in the room).
      const face = device.waitForMessage((m) => m.type === "llm");
      await agent.emotion("happy", "😊");
      await face;
      // Another agent is in the room when the first goes (a re-dispatched one).
      const next = await FakeAgent.join(lk, agent.roomName, { version: "A" });
      assert.ok(next);
      try {
        await agent.leave();
        await eventually(async () => (await released()) - before === 16, 5000, "16 streams released");
        const sentence = device.waitForMessage((m) => m.type === "tts" && m.state === "sentence_start");
        await next.texts.said("Back again.");
        assert.equal((await sentence).text, "Back again.");
      } finally {
        await next.leave();
      }
    });

    it("with AGENT_GREETING=start_greeting, Agent A greets on start_greeting and is sent no agent_ready", async () => {
      const other = await startStack();
      try {
        await other.startGateway({
          ...liveKitEnv(lk, transport),
          AGENT_GREETING: "start_greeting",
        });
        const device = await other.device();
        const reply = await device.hello();
        device.listen("auto");
        device.talk(0);
        const agent = await dispatcher.agentIn(roomName(device.mac, reply.sessionId));
        assert.ok(agent);
        await greeted(device);
        assert.equal(agent.greetings, 1);
        assert.equal(agent.received.filter((m) => m.type === "start_greeting").length, 1);
        assert.equal(agent.received.filter((m) => m.type === "agent_ready").length, 0);
      } finally {
        await other.stop();
      }
    });

    it("an inactive session lets the agent say goodbye (end_prompt) before the device is told goodbye", async () => {
      const { device, agent } = await session("B", true);
      // Idle counts from the greeting's tts stop (the device sends nothing while it plays;
      // session-timers.test.ts times it): the farewell comes the idle timeout after that.
      await greeted(device);
      const bye = device.waitForMessage((m) => m.type === "goodbye", IDLE_TIMEOUT_MS + 15_000);
      await agent.waitFor((m) => m.type === "end_prompt", IDLE_TIMEOUT_MS + 5000);
      const goodbye = await bye;
      assert.equal(goodbye.reason, "inactivity_timeout");
      assert.equal(agent.goodbyes, 1);
      const kinds = device.messages.map((m) => (m.type === "tts" ? `tts ${m.state}` : m.type));
      assert.deepEqual(kinds.slice(-3), ["tts start", "tts stop", "goodbye"]);
      await agent.waitFor((m) => m.type === "cleanup_request");
    });
  });
}
