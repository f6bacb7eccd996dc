/**
 * What the deployed agent sends on the LiveKit data channel (docs/agent-data-channel.md):
 * both of its versions, parsed into typed messages. Pure: bytes in, a message or a drop
 * reason out. Every message is JSON with a string `type`; the data topic is not needed to
 * tell them apart (the agent uses `emotion` and `mcp_function_call` topics, but the type is
 * what BUNNY and we dispatch on).
 */
import type { JsonObject } from "../../../protocol/messages.ts";

/** LiveKit Agents' AgentState values (livekit-agents 1.x). */
export type AgentState = "initializing" | "idle" | "listening" | "thinking" | "speaking";
const AGENT_STATES: ReadonlySet<string> = new Set([
  "initializing",
  "idle",
  "listening",
  "thinking",
  "speaking",
]);

export function isAgentState(v: unknown): v is AgentState {
  return typeof v === "string" && AGENT_STATES.has(v);
}

export type AgentMessage =
  | { readonly type: "agent_state_changed"; readonly newState: AgentState }
  | { readonly type: "speech_created"; readonly text: string }
  | { readonly type: "user_input_transcribed"; readonly transcript: string; readonly isFinal: boolean }
  | { readonly type: "llm"; readonly emotion: string; readonly text: string | undefined }
  /** `function_call` and `device_control` alike: a tool call on the device (names of §5.3). */
  | {
      readonly type: "function_call";
      readonly name: string;
      readonly arguments: JsonObject;
      readonly requestId: string | undefined;
    }
  | { readonly type: "music_playback_stopped" };

export type AgentMessageError =
  | "oversized"
  | "malformed_json"
  | "not_object"
  | "unknown_type"
  | "bad_state"
  | "bad_transcript"
  | "bad_emotion"
  | "bad_function_call"
  | "bad_device_control";

/** Far above anything the agent sends (its largest, a function call, is ~200 bytes). */
export const MAX_AGENT_MESSAGE_BYTES = 16 * 1024;
/** Text shown on the device (transcripts, subtitles) is cut here: its screen is small. */
export const MAX_TEXT_CHARS = 1000;

/** `device_control` actions (BUNNY's mapping to `function_call` names). */
const DEVICE_CONTROL: Readonly<Record<string, string>> = {
  set_volume: "self_set_volume",
  volume_up: "self_volume_up",
  volume_down: "self_volume_down",
  get_volume: "self_get_volume",
  mute: "self_mute",
  unmute: "self_unmute",
  set_light_color: "self_set_light_color",
  get_battery_status: "self_get_battery_status",
  set_light_mode: "self_set_light_mode",
  set_rainbow_speed: "self_set_rainbow_speed",
};

type Parsed = AgentMessage | { readonly error: AgentMessageError };

export function parseAgentMessage(payload: Uint8Array): Parsed {
  if (payload.byteLength > MAX_AGENT_MESSAGE_BYTES) return { error: "oversized" };
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("utf8"));
  } catch {
    return { error: "malformed_json" };
  }
  if (!isObject(v)) return { error: "not_object" };
  switch (v.type) {
    case "agent_state_changed": {
      const data = v.data;
      const state = isObject(data) ? data.new_state : undefined;
      return isAgentState(state) ? { type: "agent_state_changed", newState: state } : { error: "bad_state" };
    }
    case "speech_created": {
      const data = v.data;
      const text = isObject(data) && typeof data.text === "string" ? data.text : "";
      return { type: "speech_created", text: clip(text) };
    }
    case "user_input_transcribed": {
      const data = v.data;
      if (!isObject(data) || typeof data.transcript !== "string") return { error: "bad_transcript" };
      return {
        type: "user_input_transcribed",
        transcript: clip(data.transcript),
        // The agent always sends is_final:true; a missing flag counts as final, as BUNNY reads it.
        isFinal: data.is_final !== false,
      };
    }
    case "llm": {
      if (typeof v.emotion !== "string" || v.emotion.length === 0 || v.emotion.length > 64)
        return { error: "bad_emotion" };
      return { type: "llm", emotion: v.emotion, text: typeof v.text === "string" ? clip(v.text) : undefined };
    }
    case "function_call":
      return parseFunctionCall(v);
    case "device_control":
      return parseDeviceControl(v);
    case "music_playback_stopped":
      return { type: "music_playback_stopped" };
    default:
      return { error: "unknown_type" };
  }
}

function parseFunctionCall(v: Record<string, unknown>): Parsed {
  const fc = v.function_call;
  if (!isObject(fc) || typeof fc.name !== "string" || !validName(fc.name))
    return { error: "bad_function_call" };
  let args: unknown = fc.arguments ?? {};
  // OpenAI-style callers send arguments as a JSON string; accept it, as BUNNY does.
  if (typeof args === "string") {
    try {
      args = JSON.parse(args);
    } catch {
      return { error: "bad_function_call" };
    }
  }
  if (!isObject(args) || !withinDepth(args)) return { error: "bad_function_call" };
  return { type: "function_call", name: fc.name, arguments: args as JsonObject, requestId: requestId(v) };
}

function parseDeviceControl(v: Record<string, unknown>): Parsed {
  const action = v.action;
  if (typeof action !== "string") return { error: "bad_device_control" };
  // Own keys only: "constructor" would find Object itself.
  const name = Object.hasOwn(DEVICE_CONTROL, action) ? DEVICE_CONTROL[action] : undefined;
  if (!name) return { error: "bad_device_control" };
  const args: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(v)) {
    if (k !== "type" && k !== "action" && k !== "request_id" && k !== "timestamp") args[k] = value;
  }
  if (!withinDepth(args)) return { error: "bad_device_control" };
  // BUNNY accepts `value` for the volume too.
  if (name === "self_set_volume" && args.volume === undefined && args.value !== undefined)
    args.volume = args.value;
  return { type: "function_call", name, arguments: args as JsonObject, requestId: requestId(v) };
}

function requestId(v: Record<string, unknown>): string | undefined {
  const id = v.request_id;
  return typeof id === "string" && id.length > 0 && id.length <= 128 ? id : undefined;
}

function validName(name: string): boolean {
  return name.length > 0 && name.length <= 128 && /^[A-Za-z0-9_.-]+$/.test(name);
}

/**
 * Tool arguments are flat (device-protocol.md 5.3). JSON.parse takes any depth, but
 * JSON.stringify, which publishes them to the device, overflows the stack at a few thousand
 * levels: 16 KiB of brackets is enough, and that call then failed unanswered and uncounted.
 */
export const MAX_ARGUMENT_DEPTH = 32;

function withinDepth(v: unknown): boolean {
  let level: unknown[] = [v];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > MAX_ARGUMENT_DEPTH) return false;
    const next: unknown[] = [];
    for (const x of level) if (typeof x === "object" && x !== null) next.push(...Object.values(x));
    level = next;
  }
  return true;
}

function clip(text: string): string {
  return text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
