/**
 * The LiveKit bridge's glue (bridge.ts) in process: a room transport that records what the
 * bridge sends and lets the test play the room's events, fake server APIs, a recording
 * session sink, and time on a clock the test moves. The agent protocol's pure parts are
 * tested in agent-protocol.test.ts, agent-transcriptions.test.ts, agent-turns.test.ts and
 * agent-tools.test.ts; the real server and agents in the livekit-*.test.ts files.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RoomServiceClient } from "livekit-server-sdk";
import type { AgentSink } from "../src/agent/agent-bridge.ts";
import { AFTER_GOODBYE_MS } from "../src/agent/livekit/agent-protocol/farewell.ts";
import { GREETING_WAIT_MS } from "../src/agent/livekit/agent-protocol/greeting.ts";
import {
  MAX_OPEN_STREAMS,
  SENDER_LEFT_GRACE_MS,
  STALE_STREAM_MS,
} from "../src/agent/livekit/agent-protocol/transcription.ts";
import { AGENT_GONE_GRACE_MS } from "../src/agent/livekit/agents-present.ts";
import { LiveKitBridge } from "../src/agent/livekit/bridge.ts";
import type {
  RemoteParticipantInfo,
  RoomTransport,
  RoomTransportHandlers,
} from "../src/agent/livekit/room-transport.ts";
import type { LiveKitServices } from "../src/agent/livekit/services.ts";
import type { JsonObject } from "../src/protocol/messages.ts";
import { ManualTimers } from "./support/manual-timers.ts";

const AGENT = "agent-AJ_test";

/** Lets the promise callbacks queued so far run. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * One bridge in a fake room; `sink` lists what the device side was asked to do, in order.
 * `join`: the transport's join resolves with it (the bridge is then returned before it has).
 */
async function openBridge(options: { join?: Promise<void> } = {}) {
  const timers = new ManualTimers();
  /** Timers the bridge started; past 1000 they never fire, so a timer loop cannot hang a test. */
  let timerStarts = 0;
  const startTimer: typeof timers.start = (ms, fire) => {
    timerStarts++;
    return timers.start(ms, timerStarts > 1000 ? () => {} : fire);
  };
  const sink: string[] = [];
  /** The data messages the bridge sent the agent, parsed. */
  const sent: JsonObject[] = [];
  const drops: string[] = [];
  let handlers: RoomTransportHandlers | undefined;
  const transport: RoomTransport = {
    join: () => options.join ?? Promise.resolve(),
    pushPcm: () => {},
    sendData: async (payload) => {
      sent.push(JSON.parse(Buffer.from(payload).toString("utf8")) as JsonObject);
    },
    leave: async () => {},
  };
  const services: LiveKitServices = {
    options: {
      url: "ws://livekit.invalid",
      apiKey: "key",
      apiSecret: "secret",
      dispatch: { kind: "none" },
      emptyTimeoutS: 60,
      maxParticipants: 4,
      mcpTimeoutMs: 5000,
      tokenTtlS: 600,
    },
    rooms: { createRoom: async () => ({}), deleteRoom: async () => {} } as unknown as RoomServiceClient,
    events: { roomOpened() {}, roomClosed() {}, failed() {}, drop: (reason) => drops.push(reason) },
    token: async () => "token",
    dispatch: async () => {},
  };
  let bridge: LiveKitBridge | undefined;
  const agentSink: AgentSink = {
    speechStart: () => sink.push("tts start"),
    audio: () => sink.push("audio"),
    speechEnd: () => sink.push("tts stop"),
    // Serialised as the gateway publishes it (session/gateway.ts), so a message it could
    // not publish fails here as there.
    sendToDevice: (m) => sink.push(`device ${String((JSON.parse(JSON.stringify(m)) as JsonObject).type)}`),
    // As the session does: its close closes the bridge.
    endSession: (reason) => {
      sink.push(`end ${reason}`);
      void bridge?.close();
    },
  };
  bridge = new LiveKitBridge(
    { sessionId: "i1-b1-abc", clientId: "GID_test@@@a0_85_e3_f4_49_34@@@uuid-1", mac: "a0:85:e3:f4:49:34" },
    agentSink,
    {
      services,
      greeting: "agent_ready",
      transports: (_join, h) => {
        handlers = h;
        return transport;
      },
      now: timers.now,
      startTimer,
    },
  );
  if (options.join) await settled();
  else await bridge.ready;
  assert.ok(handlers, "the bridge opened its transport");
  const room = handlers;
  const agent = (attributes: Record<string, string> = {}): RemoteParticipantInfo => ({
    identity: AGENT,
    kind: "agent",
    attributes,
  });
  return { bridge, room, agent, timers, sink, sent, drops, timerStarts: () => timerStarts };
}

describe("the agent leaving the room", () => {
  it("ends a turn it had open, even one with no voice yet", async () => {
    const { room, agent, sink } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "speaking" }));
    assert.deepEqual(sink, ["tts start"]);
    room.participantLeft(AGENT);
    assert.deepEqual(sink, ["tts start", "tts stop"]);
  });

  it("ends the session (agent_ended) AGENT_GONE_GRACE_MS after the last agent left", async () => {
    const { room, agent, timers, sink } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "listening" }));
    room.participantLeft(AGENT);
    timers.advance(AGENT_GONE_GRACE_MS - 1);
    assert.deepEqual(sink, []);
    timers.advance(1);
    assert.deepEqual(sink, ["end agent_ended"]);
  });

  it("keeps the session when the agent joins again within the grace", async () => {
    const { room, agent, timers, sink } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "listening" }));
    room.participantLeft(AGENT);
    timers.advance(AGENT_GONE_GRACE_MS / 2);
    room.participantJoined(agent({ "lk.agent.state": "listening" }));
    timers.advance(AGENT_GONE_GRACE_MS * 10);
    assert.deepEqual(sink, []);
  });

  it("its state message, late on the data channel after its leave, opens no turn (counted), also once it rejoins", async () => {
    const { room, agent, timers, sink, drops } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "speaking" }));
    // Sent before it left; the leave came by signalling, ahead of the data channel.
    room.participantLeft(AGENT);
    const speaking = { type: "agent_state_changed", data: { old_state: "thinking", new_state: "speaking" } };
    room.data(Buffer.from(JSON.stringify(speaking)), undefined, AGENT);
    room.data(Buffer.from(JSON.stringify({ type: "speech_created", data: { text: "" } })), undefined, AGENT);
    assert.deepEqual(sink, ["tts start", "tts stop"]);
    assert.deepEqual(drops, ["agent_signal_not_in_room", "agent_signal_not_in_room"]);
    // Back after a reconnect, its state attribute not set again yet: a `speaking` kept from
    // the message above held the device in Speaking with no deadline.
    room.participantJoined(agent());
    timers.advance(60_000);
    assert.deepEqual(sink, ["tts start", "tts stop"]);
  });

  it("a room deleted after the agent left ends the session as agent_ended, not as a failure", async () => {
    const { room, agent, sink } = await openBridge();
    room.participantJoined(agent());
    room.participantLeft(AGENT);
    room.disconnected("room deleted");
    assert.deepEqual(sink, ["end agent_ended"]);
  });
});

/** A chunk of the agent's transcription stream `streamId`. */
const said = (streamId: string, text: string, done: boolean) => ({
  streamId,
  topic: "lk.transcription",
  from: AGENT,
  attributes: {},
  text,
  done,
});

describe("the agent's transcriptions when it leaves", () => {
  it("its last sentence is shown when the stream's end comes after its leave", async () => {
    const { room, agent, timers, sink, drops } = await openBridge();
    room.participantJoined(agent());
    room.text(said("bye", "Goodbye, ", false));
    // The leave came by signalling before the end, sent first, came by the data channel.
    room.participantLeft(AGENT);
    timers.advance(SENDER_LEFT_GRACE_MS - 1);
    room.text(said("bye", "see you.", true));
    assert.deepEqual(sink, ["device tts"]);
    timers.advance(SENDER_LEFT_GRACE_MS);
    assert.deepEqual(drops, []);
  });

  it("a stream it leaves open is released SENDER_LEFT_GRACE_MS later, counted, its rest ignored", async () => {
    const { room, agent, timers, sink, drops } = await openBridge();
    room.participantJoined(agent());
    room.text(said("half", "Half a ", false));
    room.participantLeft(AGENT);
    timers.advance(SENDER_LEFT_GRACE_MS - 1);
    assert.deepEqual(drops, []);
    timers.advance(1);
    assert.deepEqual(drops, ["agent_text_sender_left"]);
    room.text(said("half", "sentence.", true));
    assert.deepEqual(sink, []);
  });
  it("a stream whose first chunk comes after its leave is released SENDER_LEFT_GRACE_MS after the leave, counted", async () => {
    const { room, agent, timers, drops } = await openBridge();
    room.participantJoined(agent());
    room.participantLeft(AGENT);
    timers.advance(100);
    room.text(said("late", "Half a ", false));
    timers.advance(SENDER_LEFT_GRACE_MS - 101);
    assert.deepEqual(drops, []);
    timers.advance(1);
    assert.deepEqual(drops, ["agent_text_sender_left"]);
  });
});

describe("the agent's transcriptions when it stays but leaves streams open", () => {
  it("MAX_OPEN_STREAMS it never ends: a new one STALE_STREAM_MS later is shown, one stale stream counted", async () => {
    const { room, agent, timers, sink, drops } = await openBridge();
    room.participantJoined(agent());
    // Its transcription forwarder failed mid-sentence each time (the writer never closed).
    for (let i = 0; i < MAX_OPEN_STREAMS; i++) room.text(said(`half-${i}`, "Half a ", false));
    room.text(said("early", "Hi.", true));
    const texts = () => drops.filter((d) => d.startsWith("agent_text_"));
    assert.deepEqual(texts(), ["agent_text_too_many_streams"]);
    assert.deepEqual(sink, []);
    timers.advance(STALE_STREAM_MS);
    room.text(said("next", "Hello again.", true));
    assert.deepEqual(sink, ["device tts"]);
    assert.deepEqual(texts(), ["agent_text_too_many_streams", "agent_text_stale"]);
  });
});

describe("the goodbye before an inactivity close", () => {
  it("a device abort during the goodbye closes AFTER_GOODBYE_MS later, not at the cap", async () => {
    const { bridge, room, agent, timers } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "listening" }));
    let done = false;
    const farewell = bridge.farewell().then(() => {
      done = true;
    });
    room.attributesChanged(AGENT, { "lk.agent.state": "speaking" });
    bridge.onDeviceEvent({ kind: "abort", reason: undefined });
    timers.advance(AFTER_GOODBYE_MS - 1);
    await settled();
    assert.equal(done, false);
    timers.advance(1);
    await settled();
    assert.equal(done, true);
    await farewell;
  });
});

describe("the greeting", () => {
  it("an agent seen before the join completes: the greeting waits for the join, no timer loop", async () => {
    let joined = () => {};
    const join = new Promise<void>((resolve) => {
      joined = resolve;
    });
    const { bridge, room, agent, timers, sent, timerStarts } = await openBridge({ join });
    // Both transports can report a participant while their join is still publishing.
    room.participantJoined(agent({ "lk.agent.state": "listening" }));
    timers.advance(GREETING_WAIT_MS + 1000);
    assert.ok(timerStarts() < 10, `${timerStarts()} timers started`);
    joined();
    await bridge.ready;
    assert.deepEqual(
      sent.map((m) => m.type),
      ["device_info", "agent_ready"],
    );
  });
});

describe("tool calls at close", () => {
  it("a call the device has not answered gets a -32000 error answer before cleanup_request", async () => {
    const { bridge, room, agent, sink, sent } = await openBridge();
    room.participantJoined(agent());
    const call = {
      type: "function_call",
      function_call: { name: "self_get_battery_status", arguments: {} },
      request_id: "req_1",
    };
    room.data(Buffer.from(JSON.stringify(call)), "mcp_function_call", AGENT);
    assert.deepEqual(sink, ["device mcp"]);
    await bridge.close();
    const types = sent.map((m) => m.type).filter((t) => t === "mcp" || t === "cleanup_request");
    assert.deepEqual(types, ["mcp", "cleanup_request"]);
    const answer = sent.find((m) => m.type === "mcp") as { request_id: string; payload: JsonObject };
    assert.equal(answer.request_id, "req_1");
    assert.equal((answer.payload.error as { code: number }).code, -32000);
  });
});

describe("bad tool calls", () => {
  it("arguments nested too deep to publish are dropped and counted, not lost unanswered", async () => {
    const { bridge, room, agent, sink, sent, drops } = await openBridge();
    room.participantJoined(agent());
    // Fits the 16 KiB limit, but nests deeper than JSON.stringify can go.
    const depth = 8100;
    const raw = `{"type":"function_call","request_id":"req_1","function_call":{"name":"x","arguments":{"a":${"[".repeat(depth)}${"]".repeat(depth)}}}}`;
    assert.ok(raw.length < 16 * 1024);
    room.data(Buffer.from(raw), "mcp_function_call", AGENT);
    await settled();
    assert.deepEqual(sink, []);
    assert.deepEqual(drops, ["agent_data_bad_function_call"]);
    await bridge.close();
    assert.deepEqual(
      sent.map((m) => m.type),
      ["cleanup_request"],
    );
  });
});

describe("agent audio held back", () => {
  const voice = () => Buffer.from(new Int16Array(480).fill(3000).buffer);
  const silence = () => Buffer.alloc(960);

  it("voice after an abort is dropped and counted agent_audio_gated; silence is not counted", async () => {
    const { bridge, room, agent, sink, drops } = await openBridge();
    room.participantJoined(agent());
    room.data(Buffer.from(JSON.stringify({ type: "speech_created", data: { text: "" } })), undefined, AGENT);
    bridge.onDeviceEvent({ kind: "abort", reason: undefined });
    room.agentAudio(voice());
    room.agentAudio(silence());
    assert.deepEqual(sink, ["tts start"]);
    assert.deepEqual(drops, ["agent_audio_gated"]);
  });

  it("the aborted turn's speech_created, late on the data channel, starts nothing and is counted", async () => {
    const { bridge, room, agent, sink, drops } = await openBridge();
    room.participantJoined(agent({ "lk.agent.state": "thinking" }));
    room.attributesChanged(AGENT, { "lk.agent.state": "speaking" });
    room.agentAudio(voice());
    bridge.onDeviceEvent({ kind: "abort", reason: undefined });
    room.data(Buffer.from(JSON.stringify({ type: "speech_created", data: { text: "" } })), undefined, AGENT);
    room.agentAudio(voice());
    assert.deepEqual(sink, ["tts start", "audio"]);
    assert.deepEqual(drops, ["agent_signal_late", "agent_audio_gated"]);
  });
});
