/**
 * What the gateway sends the agent (docs/agent-data-channel.md), built here and nowhere
 * else. All go reliable with no topic, as BUNNY sends them; the agent dispatches on `type`.
 * `now` is injected so the messages are reproducible in tests.
 */
import type { JsonObject } from "../../../protocol/messages.ts";

/** Which message makes the agent greet: A acts on both, B only on `agent_ready`. */
export type GreetingTrigger = "agent_ready" | "start_greeting";

export interface SessionRef {
  readonly sessionId: string;
  readonly mac: string;
  /** The device's uuid from its MQTT client id (may be absent). */
  readonly uuid: string | undefined;
}

/** The greeting trigger, as one or more messages in order. */
export function greetingMessages(trigger: GreetingTrigger, s: SessionRef, now: number): JsonObject[] {
  if (trigger === "start_greeting") {
    return [{ type: "start_greeting", session_id: s.sessionId, is_mode_switch: false, timestamp: now }];
  }
  // BUNNY's legacy path: device_info first (Agent B takes the MAC from it), then agent_ready.
  const info = { device_mac: s.mac, device_uuid: s.uuid ?? null, timestamp: now, source: "mqtt_gateway" };
  return [
    { type: "device_info", ...info },
    { type: "agent_ready", message: "Say hello to the user", session_id: s.sessionId, ...info },
  ];
}

export function abortPlayback(s: SessionRef, now: number): JsonObject {
  return { type: "abort_playback", session_id: s.sessionId, timestamp: now, source: "mqtt_gateway" };
}

export const END_PROMPT =
  "The conversation has been quiet for a while and is about to end. Say a short, warm goodbye to the user.";

export function endPrompt(s: SessionRef, now: number): JsonObject {
  return { type: "end_prompt", session_id: s.sessionId, prompt: END_PROMPT, timestamp: now };
}

export function cleanupRequest(s: SessionRef, now: number): JsonObject {
  return { type: "cleanup_request", session_id: s.sessionId, timestamp: now };
}

/** The device's answer to an agent tool call, with the agent's own request id. */
export function mcpAnswer(s: SessionRef, payload: JsonObject, requestId: string, now: number): JsonObject {
  return {
    type: "mcp",
    payload,
    session_id: s.sessionId,
    request_id: requestId,
    timestamp: new Date(now).toISOString(),
  };
}

export function encodeMessage(m: JsonObject): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}
