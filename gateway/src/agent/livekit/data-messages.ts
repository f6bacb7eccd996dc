/**
 * The LiveKit data channel between the gateway and the agent (JSON, reliable; documented
 * in docs/agent-data-channel.md). Pure: bytes in, typed messages out, and builders.
 */
import type { JsonObject } from "../../protocol/messages.ts";

export type AgentMessage =
  | { readonly type: "agent_state"; readonly state: "listening" | "thinking" | "speaking" | "idle" }
  | { readonly type: "transcript"; readonly text: string; readonly final: boolean }
  | { readonly type: "reply_text"; readonly text: string }
  | { readonly type: "emotion"; readonly emotion: string; readonly text: string | undefined }
  | {
      readonly type: "mcp_call";
      readonly requestId: string;
      readonly name: string;
      readonly arguments: JsonObject;
    }
  | { readonly type: "set_volume"; readonly requestId: string; readonly volume: number }
  | { readonly type: "end_session" };

export const MAX_AGENT_MESSAGE_BYTES = 16 * 1024;

export function parseAgentMessage(payload: Uint8Array): AgentMessage | { readonly error: string } {
  if (payload.byteLength > MAX_AGENT_MESSAGE_BYTES) return { error: "oversized" };
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    return { error: "malformed_json" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { error: "not_object" };
  const o = v as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : undefined);
  switch (o.type) {
    case "agent_state": {
      const state = o.state;
      if (state !== "listening" && state !== "thinking" && state !== "speaking" && state !== "idle") {
        return { error: "bad_state" };
      }
      return { type: "agent_state", state };
    }
    case "transcript": {
      const text = str("text");
      return text === undefined
        ? { error: "bad_transcript" }
        : { type: "transcript", text, final: o.final !== false };
    }
    case "reply_text": {
      const text = str("text");
      return text === undefined ? { error: "bad_reply_text" } : { type: "reply_text", text };
    }
    case "emotion": {
      const emotion = str("emotion");
      return emotion === undefined
        ? { error: "bad_emotion" }
        : { type: "emotion", emotion, text: str("text") };
    }
    case "mcp_call": {
      const requestId = str("request_id");
      const name = str("name");
      const args = o.arguments ?? {};
      if (!requestId || !name || typeof args !== "object" || args === null || Array.isArray(args)) {
        return { error: "bad_mcp_call" };
      }
      return { type: "mcp_call", requestId, name, arguments: args as JsonObject };
    }
    case "set_volume": {
      const requestId = str("request_id");
      const volume = o.volume;
      if (!requestId || typeof volume !== "number" || !Number.isFinite(volume))
        return { error: "bad_set_volume" };
      return { type: "set_volume", requestId, volume: Math.max(0, Math.min(100, Math.round(volume))) };
    }
    case "end_session":
      return { type: "end_session" };
    default:
      return { error: "unknown_type" };
  }
}

/** Gateway -> agent. */
export type GatewayMessage =
  | { type: "session_start"; session_id: string; device_mac: string }
  | { type: "abort"; session_id: string; reason: string | null }
  | { type: "device_goodbye"; session_id: string }
  | { type: "end_of_session"; session_id: string }
  | { type: "wake_word"; session_id: string; text: string }
  | { type: "mcp_result"; request_id: string; ok: boolean; result: JsonObject | null; error: string | null }
  | { type: "device_mcp"; session_id: string; payload: JsonObject };

export function encodeGatewayMessage(m: GatewayMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}
