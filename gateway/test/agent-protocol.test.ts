/**
 * The deployed agent's protocol, as pure code: message parsing (both agent versions),
 * what the gateway sends, tool-name mapping, turn framing, greeting and farewell timing,
 * LiveKit Agents' transcriptions, room names. No I/O, time injected.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_AGENT_MESSAGE_BYTES,
  parseAgentMessage,
} from "../src/agent/livekit/agent-protocol/agent-messages.ts";
import {
  AFTER_GOODBYE_MS,
  CAP_MS,
  Farewell,
  SPEAK_WAIT_MS,
} from "../src/agent/livekit/agent-protocol/farewell.ts";
import {
  abortPlayback,
  greetingMessages,
  mcpAnswer,
} from "../src/agent/livekit/agent-protocol/gateway-messages.ts";
import { GREETING_WAIT_MS, Greeting } from "../src/agent/livekit/agent-protocol/greeting.ts";
import { isAgentParticipant, isVoiced, repeatsRecent } from "../src/agent/livekit/agent-protocol/signals.ts";
import { planTool, VolumeSteps, volumeFromStatus } from "../src/agent/livekit/agent-protocol/tools.ts";
import { MAX_OPEN_STREAMS, Transcriptions } from "../src/agent/livekit/agent-protocol/transcription.ts";
import {
  END_GRACE_MS,
  END_QUIET_MS,
  FALLBACK_SILENCE_MS,
  SIGNALLED_SILENCE_MS,
  Turns,
} from "../src/agent/livekit/agent-protocol/turns.ts";
import { McpCalls } from "../src/agent/livekit/mcp-calls.ts";
import { parseRoomName, roomName } from "../src/agent/livekit/room-names.ts";
import { ToolCalls } from "../src/agent/livekit/tool-calls.ts";
import type { JsonObject } from "../src/protocol/messages.ts";

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe("agent messages", () => {
  it("reads agent_state_changed's new state (both versions)", () => {
    const m = parseAgentMessage(
      json({ type: "agent_state_changed", data: { old_state: "thinking", new_state: "speaking" } }),
    );
    assert.deepEqual(m, { type: "agent_state_changed", newState: "speaking" });
  });

  it("refuses an agent_state_changed with an unknown state", () => {
    const m = parseAgentMessage(json({ type: "agent_state_changed", data: { new_state: "dancing" } }));
    assert.deepEqual(m, { error: "bad_state" });
  });

  it("reads speech_created with or without text", () => {
    assert.deepEqual(parseAgentMessage(json({ type: "speech_created", data: { text: "" } })), {
      type: "speech_created",
      text: "",
    });
    assert.deepEqual(parseAgentMessage(json({ type: "speech_created" })), {
      type: "speech_created",
      text: "",
    });
  });

  it("reads user_input_transcribed's transcript and finality", () => {
    const m = parseAgentMessage(
      json({ type: "user_input_transcribed", data: { transcript: "hello", is_final: false } }),
    );
    assert.deepEqual(m, { type: "user_input_transcribed", transcript: "hello", isFinal: false });
  });

  it("reads Agent B's llm emotion", () => {
    assert.deepEqual(parseAgentMessage(json({ type: "llm", text: "😊", emotion: "happy" })), {
      type: "llm",
      emotion: "happy",
      text: "😊",
    });
  });

  it("reads Agent B's function_call with its request id", () => {
    const m = parseAgentMessage(
      json({
        type: "function_call",
        function_call: { name: "self_set_volume", arguments: { volume: 40 } },
        timestamp: "2025-01-01T00:00:00",
        request_id: "req_1730000000000",
      }),
    );
    assert.deepEqual(m, {
      type: "function_call",
      name: "self_set_volume",
      arguments: { volume: 40 },
      requestId: "req_1730000000000",
    });
  });

  it("accepts function_call arguments given as a JSON string", () => {
    const m = parseAgentMessage(
      json({ type: "function_call", function_call: { name: "x", arguments: '{"a":1}' } }),
    );
    assert.deepEqual(m, { type: "function_call", name: "x", arguments: { a: 1 }, requestId: undefined });
  });

  it("maps device_control actions to function_call names, value as volume", () => {
    const m = parseAgentMessage(json({ type: "device_control", action: "set_volume", value: 30 }));
    assert.deepEqual(m, {
      type: "function_call",
      name: "self_set_volume",
      arguments: { value: 30, volume: 30 },
      requestId: undefined,
    });
  });

  it("drops and names malformed, oversized, non-object and unknown messages", () => {
    assert.deepEqual(parseAgentMessage(new TextEncoder().encode("{not json")), { error: "malformed_json" });
    assert.deepEqual(parseAgentMessage(new Uint8Array(MAX_AGENT_MESSAGE_BYTES + 1)), { error: "oversized" });
    assert.deepEqual(parseAgentMessage(json([1, 2])), { error: "not_object" });
    assert.deepEqual(parseAgentMessage(json({ type: "mobile_music_request" })), { error: "unknown_type" });
    assert.deepEqual(parseAgentMessage(json({ type: "function_call", function_call: { name: "" } })), {
      error: "bad_function_call",
    });
    assert.deepEqual(parseAgentMessage(json({ type: "device_control", action: "explode" })), {
      error: "bad_device_control",
    });
  });
});

describe("gateway messages", () => {
  const ref = { sessionId: "1-abcd1234-0123456789abcdef", mac: "02:00:00:00:00:01", uuid: "u-1" };

  it("start_greeting is one message with is_mode_switch false", () => {
    assert.deepEqual(greetingMessages("start_greeting", ref, 5), [
      { type: "start_greeting", session_id: ref.sessionId, is_mode_switch: false, timestamp: 5 },
    ]);
  });

  it("agent_ready comes after device_info, which carries the MAC", () => {
    const [info, ready] = greetingMessages("agent_ready", ref, 5);
    assert.equal(info?.type, "device_info");
    assert.equal(info?.device_mac, ref.mac);
    assert.equal(ready?.type, "agent_ready");
  });

  it("abort is abort_playback, the only name the agents act on", () => {
    assert.equal(abortPlayback(ref, 1).type, "abort_playback");
  });

  it("a tool answer carries the device payload and the agent's request id", () => {
    const payload = { jsonrpc: "2.0", id: 3, result: { content: [] } };
    assert.deepEqual(
      { ...mcpAnswer(ref, payload, "req_9", 0), timestamp: undefined },
      { type: "mcp", payload, session_id: ref.sessionId, request_id: "req_9", timestamp: undefined },
    );
  });
});

describe("tool names (device-protocol.md 5.3)", () => {
  it("maps the agent's names to the device's MCP tools", () => {
    const cases: [string, string][] = [
      ["self_set_volume", "self.audio_speaker.set_volume"],
      ["self_get_volume", "self.get_device_status"],
      ["self_mute", "self.audio_speaker.mute"],
      ["self_unmute", "self.audio_speaker.unmute"],
      ["self_set_light_color", "self.led.set_color"],
      ["self_get_battery_status", "self.battery.get_status"],
      ["self_set_light_mode", "self.led.set_mode"],
      ["self_set_rainbow_speed", "self.led.set_rainbow_speed"],
    ];
    for (const [name, tool] of cases)
      assert.deepEqual(planTool(name, {}), { kind: "call", tool, arguments: {} });
  });

  it("passes unknown names through unchanged", () => {
    assert.deepEqual(planTool("set_rainbow_speed", { speed_ms: 100 }), {
      kind: "call",
      tool: "set_rainbow_speed",
      arguments: { speed_ms: 100 },
    });
  });

  it("clamps set_volume to 0..100", () => {
    assert.deepEqual(planTool("self_set_volume", { volume: 140 }), {
      kind: "call",
      tool: "self.audio_speaker.set_volume",
      arguments: { volume: 100 },
    });
  });

  it("turns volume up/down into signed steps, 10 by default", () => {
    assert.deepEqual(planTool("self_volume_up", {}), { kind: "volume_step", delta: 10 });
    assert.deepEqual(planTool("self_volume_down", { step: 5 }), { kind: "volume_step", delta: -5 });
  });

  it("sums debounced steps and keeps every request id", () => {
    const steps = new VolumeSteps();
    steps.add(10, "a");
    steps.add(10, "b");
    steps.add(-5, undefined);
    assert.deepEqual(steps.take(), { delta: 15, requestIds: ["a", "b", undefined] });
    assert.equal(steps.pending, false);
  });

  it("reads the volume from a get_device_status answer", () => {
    const text = JSON.stringify({ audio_speaker: { volume: 60 } });
    assert.equal(
      volumeFromStatus({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } }),
      60,
    );
    assert.equal(volumeFromStatus({ jsonrpc: "2.0", id: 1, error: { code: 1 } }), undefined);
  });
});

describe("turn framing", () => {
  it("speech_created starts a turn, with its text", () => {
    const t = new Turns();
    assert.deepEqual(t.speechCreated("hi", 0), [{ kind: "start", text: "hi" }]);
  });

  it("speech_created and a speaking state (message and attribute) frame one turn once", () => {
    const t = new Turns();
    const all = [
      ...t.speechCreated("", 0),
      ...t.agentState("attribute", "speaking", 10),
      ...t.agentState("message", "speaking", 20),
      ...t.audio(true, 30).actions,
    ];
    assert.deepEqual(all, [{ kind: "start", text: undefined }]);
  });

  it("leaving speaking ends the turn once the audio has gone quiet", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 100);
    assert.deepEqual(t.agentState("attribute", "listening", 110), []);
    assert.equal(t.audio(true, 150).forward, true, "the tail still plays");
    assert.deepEqual(t.tick(150 + END_QUIET_MS), [{ kind: "end", by: "signal" }]);
  });

  it("the end comes END_GRACE_MS after the signal even if audio goes on", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.agentState("message", "listening", 100);
    let ended = false;
    for (let now = 100; now <= 100 + END_GRACE_MS; now += 10) {
      if (t.audio(true, now).actions.length > 0) ended = true;
    }
    assert.ok(ended);
  });

  it("an agent_state_changed to thinking ends the turn too (A's debounce may drop speaking→listening)", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    // Quiet already for longer than END_QUIET_MS: the turn ends with the signal.
    assert.deepEqual(t.agentState("message", "thinking", 500), [{ kind: "end", by: "signal" }]);
  });

  it("music_playback_stopped ends the turn", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.musicStopped(10);
    assert.deepEqual(t.tick(10 + END_QUIET_MS), [{ kind: "end", by: "signal" }]);
  });

  it("a signal-less agent gets the silence guess: voice starts, 400 ms of silence ends", () => {
    const t = new Turns();
    assert.deepEqual(t.audio(true, 0).actions, [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.audio(false, FALLBACK_SILENCE_MS - 1).actions, []);
    assert.deepEqual(t.audio(false, FALLBACK_SILENCE_MS).actions, [{ kind: "end", by: "silence" }]);
  });

  it("an agent with signals whose end signal is lost ends after the longer silence", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.audio(true, 100);
    assert.deepEqual(t.tick(100 + FALLBACK_SILENCE_MS), []);
    assert.deepEqual(t.tick(100 + SIGNALLED_SILENCE_MS), [{ kind: "end", by: "silence" }]);
  });

  it("after an abort, audio in flight is dropped and starts nothing", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.audio(true, 10);
    t.abort(20);
    for (let now = 30; now < 5000; now += 10) {
      const r = t.audio(true, now);
      assert.equal(r.forward, false);
      assert.deepEqual(r.actions, []);
    }
  });

  it("after an abort, a repeated speaking state does not reopen the gate", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.abort(10);
    assert.deepEqual(t.agentState("attribute", "speaking", 20), []);
    assert.equal(t.gated, true);
  });

  it("after an abort, the agent's next turn (speech_created or a new speaking) plays", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.abort(10);
    t.agentState("attribute", "listening", 20);
    assert.deepEqual(t.agentState("attribute", "speaking", 30), [{ kind: "start", text: undefined }]);
    assert.equal(t.audio(true, 40).forward, true);
    const u = new Turns();
    u.speechCreated("", 0);
    u.abort(10);
    assert.deepEqual(u.speechCreated("", 20), [{ kind: "start", text: undefined }]);
  });

  it("a signal-less agent's audio plays again once it has been quiet after the abort", () => {
    const t = new Turns();
    t.audio(true, 0);
    t.abort(10);
    assert.equal(t.audio(true, 50).forward, false);
    t.audio(false, 50 + FALLBACK_SILENCE_MS);
    assert.deepEqual(t.audio(true, 60 + FALLBACK_SILENCE_MS).actions, [{ kind: "start", text: undefined }]);
  });

  it("silence outside a turn is neither forwarded nor a turn", () => {
    const t = new Turns();
    assert.deepEqual(t.audio(false, 0), { forward: false, actions: [] });
  });
});

describe("greeting", () => {
  it("waits for the agent and the device's UDP address, then greets once", () => {
    const g = new Greeting(0);
    g.agentJoined("agent-1");
    assert.deepEqual(g.due(100), []);
    g.udpKnown();
    assert.deepEqual(g.due(200), ["agent-1"]);
    assert.deepEqual(g.due(300), []);
  });

  it("greets without a UDP address after 10 s", () => {
    const g = new Greeting(0);
    g.agentJoined("agent-1");
    assert.equal(g.nextDeadline(), GREETING_WAIT_MS);
    assert.deepEqual(g.due(GREETING_WAIT_MS), ["agent-1"]);
  });

  it("never greets the same agent twice, even if it rejoins", () => {
    const g = new Greeting(0);
    g.udpKnown();
    g.agentJoined("agent-1");
    g.due(0);
    g.agentLeft("agent-1");
    g.agentJoined("agent-1");
    assert.deepEqual(g.due(1), []);
  });
});

describe("farewell", () => {
  it("ends AFTER_GOODBYE_MS after the goodbye turn ended", () => {
    const f = new Farewell(0);
    f.turnStarted(1000);
    f.turnEnded(3000);
    assert.equal(f.done(3000 + AFTER_GOODBYE_MS - 1), false);
    assert.equal(f.done(3000 + AFTER_GOODBYE_MS), true);
  });

  it("ends after SPEAK_WAIT_MS if the agent does not speak (Agent A only logs end_prompt)", () => {
    const f = new Farewell(0);
    assert.equal(f.done(SPEAK_WAIT_MS - 1), false);
    assert.equal(f.done(SPEAK_WAIT_MS), true);
  });

  it("ends at CAP_MS whatever the agent does", () => {
    const f = new Farewell(0);
    f.turnStarted(10);
    assert.equal(f.done(CAP_MS - 1), false);
    assert.equal(f.done(CAP_MS), true);
  });
});

describe("lk.transcription", () => {
  const base = { topic: "lk.transcription", attributes: {} as Record<string, string> };

  it("a final user segment (sent as the device) is stt", () => {
    const t = new Transcriptions("02:00:00:00:00:01");
    const from = "02:00:00:00:00:01";
    const attributes = { "lk.transcription_final": "true" };
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "turn on", done: false }), {
      ok: true,
      out: undefined,
    });
    t.chunk({ ...base, attributes, streamId: "s", from, text: " the light", done: false });
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "", done: true }), {
      ok: true,
      out: { kind: "stt", text: "turn on the light" },
    });
  });

  it("an interim user segment is not sent", () => {
    const t = new Transcriptions("me");
    const attributes = { "lk.transcription_final": "false" };
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from: "me", text: "tur", done: true }), {
      ok: true,
      out: undefined,
    });
  });

  it("the agent's segment is a tts sentence once complete", () => {
    const t = new Transcriptions("me");
    t.chunk({ ...base, streamId: "a", from: "agent-x", text: "Hello ", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "a", from: "agent-x", text: "there.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hello there." },
    });
  });

  it("refuses more than MAX_OPEN_STREAMS open streams", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "a", text: "x", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "one-more", from: "a", text: "x", done: false }), {
      ok: false,
      reason: "too_many_streams",
    });
  });
});

describe("signals", () => {
  it("the agent is a participant of kind agent or whose identity contains agent", () => {
    assert.equal(isAgentParticipant({ identity: "agent-AJ_x", kind: "standard" }), true);
    assert.equal(isAgentParticipant({ identity: "worker", kind: "agent" }), true);
    assert.equal(isAgentParticipant({ identity: "02:00:00:00:00:01", kind: "standard" }), false);
  });

  it("audio is voiced when any sample reaches the threshold", () => {
    const pcm = Buffer.alloc(480);
    assert.equal(isVoiced(pcm), false);
    pcm.writeInt16LE(-10, 100);
    assert.equal(isVoiced(pcm), true);
  });

  it("the same text twice within the window is one", () => {
    assert.equal(repeatsRecent({ text: "a", at: 0 }, "a", 100), true);
    assert.equal(repeatsRecent({ text: "a", at: 0 }, "b", 100), false);
    assert.equal(repeatsRecent({ text: "a", at: 0 }, "a", 10_000), false);
  });
});

describe("room names", () => {
  it("are <session id>_<mac 12 hex>_conversation, as the agent requires", () => {
    const name = roomName("02:00:00:00:00:AB", "1-abcd1234-0123456789abcdef");
    assert.equal(name, "1-abcd1234-0123456789abcdef_0200000000ab_conversation");
    assert.deepEqual(parseRoomName(name), {
      mac: "02:00:00:00:00:ab",
      sessionId: "1-abcd1234-0123456789abcdef",
      owner: { instanceId: 1, bootId: "abcd1234" },
    });
  });

  it("the sweep does not recognise rooms it did not name", () => {
    assert.equal(parseRoomName("someone_0200000000ab_conversation"), undefined);
    assert.equal(parseRoomName("1-abcd1234-0123456789abcdef_0200000000ab_music"), undefined);
  });
});

describe("MCP calls", () => {
  it("resolve with the device's own answer, matched by id", async () => {
    const calls = new McpCalls(4, 1000);
    let sent: Record<string, unknown> = {};
    const p = calls.call("self.battery.get_status", {}, (payload) => {
      sent = payload;
    });
    const answer = {
      jsonrpc: "2.0",
      id: sent.id as number,
      result: { content: [{ type: "text", text: "{}" }] },
    };
    assert.equal(calls.answer(answer), true);
    assert.deepEqual(await p, answer);
  });

  it("resolve with an error payload on close", async () => {
    const calls = new McpCalls(4, 1000);
    const p = calls.call("x", {}, () => {});
    calls.rejectAll("session closed");
    const r = await p;
    assert.equal((r.error as { message: string }).message, "session closed");
  });
});

describe("tool calls on the device", () => {
  /** A device that answers status with `volume` and accepts set_volume. */
  function device(calls: JsonObject[], volume: number) {
    return (mcp: McpCalls) => (payload: JsonObject) => {
      calls.push(payload);
      const params = payload.params as { name: string; arguments: { volume?: number } };
      const text =
        params.name === "self.get_device_status" ? JSON.stringify({ audio_speaker: { volume } }) : "true";
      if (params.arguments.volume !== undefined) volume = params.arguments.volume;
      setImmediate(() =>
        mcp.answer({ jsonrpc: "2.0", id: payload.id ?? 0, result: { content: [{ type: "text", text }] } }),
      );
    };
  }

  it("sums quick volume steps into one change and answers every request id", async () => {
    const mcp = new McpCalls(4, 1000);
    const sent: JsonObject[] = [];
    const answered: string[] = [];
    const answeredAll = new Promise<void>((resolve) => {
      const tools = new ToolCalls(mcp, {
        toDevice: device(sent, 40)(mcp),
        answer: (_payload, id) => {
          answered.push(id);
          if (answered.length === 2) resolve();
        },
      });
      tools.call("self_volume_up", {}, "req_1");
      tools.call("self_volume_up", { step: 5 }, "req_2");
    });
    await answeredAll;
    assert.deepEqual(
      sent.map((p) => (p.params as { name: string; arguments: JsonObject }).arguments),
      [{}, { volume: 55 }],
    );
    assert.deepEqual(answered, ["req_1", "req_2"]);
  });
});

describe("turn framing, late signals", () => {
  it("a speech_created that arrives after the state moved on, with no voice, ends after the long silence", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 10);
    t.agentState("attribute", "listening", 20);
    t.tick(20 + END_GRACE_MS);
    assert.deepEqual(t.speechCreated("", 1500), [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.tick(1500 + SIGNALLED_SILENCE_MS - 1), []);
    assert.deepEqual(t.tick(1500 + SIGNALLED_SILENCE_MS), [{ kind: "end", by: "silence" }]);
  });

  it("a speech_created before any voice waits while the agent still says speaking", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.speechCreated("", 0);
    assert.deepEqual(t.tick(10_000), []);
  });
});
