/**
 * The deployed agent's protocol, as pure code: message parsing (both agent versions),
 * what the gateway sends, greeting and farewell timing, signals, room names. LiveKit
 * Agents' transcriptions are in agent-transcriptions.test.ts, turn framing in
 * agent-turns.test.ts, tool calls in agent-tools.test.ts. No I/O, time injected.
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
import { parseRoomName, roomName } from "../src/agent/livekit/room-names.ts";

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

  it("a device_control action named like an Object.prototype member is no action", () => {
    // Looked up in a plain object, "constructor" found Object itself: a function_call whose
    // name was a function, which went to the device as a tools/call without a name.
    for (const action of ["constructor", "toString", "__proto__", "hasOwnProperty"])
      assert.deepEqual(parseAgentMessage(json({ type: "device_control", action })), {
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
