/**
 * The MQTT JSON control messages (docs/device-protocol.md section 2). Device messages are
 * validated here, once, into typed values; past this file the gateway trusts its types.
 * Server messages are built here, so every field the firmware needs is in one place.
 */
import { OPUS_SAMPLE_RATES } from "../audio/opus-protocol.ts";
import { DOWN_FRAME_MS, DOWN_RATE } from "./audio-format.ts";

/** The reference gateway's limit; larger device payloads are dropped and counted. */
export const MAX_DEVICE_MESSAGE_BYTES = 8192;

export interface DeviceAudioParams {
  readonly sampleRate: number;
  readonly channels: 1;
  readonly frameDurationMs: number;
}

export type ListenMode = "auto" | "manual" | "realtime";

export type DeviceMessage =
  | {
      readonly type: "hello";
      readonly audio: DeviceAudioParams;
      readonly features: { readonly mcp: boolean; readonly aec: boolean };
    }
  | {
      readonly type: "listen";
      readonly sessionId: string | undefined;
      readonly state: "start" | "stop" | "detect";
      readonly mode: ListenMode | undefined;
      readonly text: string | undefined;
    }
  | { readonly type: "abort"; readonly sessionId: string | undefined; readonly reason: string | undefined }
  | { readonly type: "mcp"; readonly sessionId: string | undefined; readonly payload: JsonObject }
  | { readonly type: "goodbye"; readonly sessionId: string | undefined };

export type MessageRejection =
  | "oversized"
  | "malformed_json"
  | "not_object"
  | "unknown_type"
  | "hello_version"
  | "bad_hello"
  | "bad_field";

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export type ParsedDeviceMessage =
  | { readonly ok: true; readonly message: DeviceMessage }
  | {
      readonly ok: false;
      readonly reason: MessageRejection;
      readonly detail: string;
      /** The session id, when the payload was an object that carried one. */
      readonly sessionId: string | undefined;
    };

/**
 * `maxBytes`: the limit on the payload as given. A payload a peer passed on was held to
 * MAX_DEVICE_MESSAGE_BYTES where it arrived; carried as text, each byte that was not UTF-8
 * became U+FFFD (3 bytes), so it may reach the owner up to 3 times as large.
 */
export function parseDeviceMessage(
  payload: Buffer,
  maxBytes: number = MAX_DEVICE_MESSAGE_BYTES,
): ParsedDeviceMessage {
  if (payload.length > maxBytes) {
    return reject("oversized", `${payload.length} bytes > ${maxBytes}`, undefined);
  }
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    return reject("malformed_json", (err as Error).message, undefined);
  }
  if (!isObject(value)) return reject("not_object", "payload is not a JSON object", undefined);
  const sessionId = typeof value.session_id === "string" ? value.session_id : undefined;
  switch (value.type) {
    case "hello":
      return parseHello(value);
    case "listen": {
      const state = value.state;
      if (state !== "start" && state !== "stop" && state !== "detect") {
        return reject("bad_field", "listen.state must be start, stop or detect", sessionId);
      }
      const mode = value.mode;
      if (mode !== undefined && mode !== "auto" && mode !== "manual" && mode !== "realtime") {
        return reject("bad_field", "listen.mode must be auto, manual or realtime", sessionId);
      }
      const text = typeof value.text === "string" ? value.text : undefined;
      return ok({ type: "listen", sessionId, state, mode, text });
    }
    case "abort":
      return ok({
        type: "abort",
        sessionId,
        reason: typeof value.reason === "string" ? value.reason : undefined,
      });
    case "mcp": {
      if (!isObject(value.payload)) return reject("bad_field", "mcp.payload must be an object", sessionId);
      return ok({ type: "mcp", sessionId, payload: value.payload as JsonObject });
    }
    case "goodbye":
      return ok({ type: "goodbye", sessionId });
    default:
      return reject("unknown_type", `type ${describeValue(value.type)}`, sessionId);
  }
}

function parseHello(value: Record<string, unknown>): ParsedDeviceMessage {
  // Both reference gateways refuse anything but version 3, and so do we.
  if (value.version !== 3)
    return reject("hello_version", `version ${describeValue(value.version)}`, undefined);
  if (value.transport !== "udp") return reject("bad_hello", "transport must be udp", undefined);
  const params = value.audio_params;
  let audio: DeviceAudioParams = { sampleRate: 16000, channels: 1, frameDurationMs: 60 };
  if (params !== undefined) {
    if (!isObject(params)) return reject("bad_hello", "audio_params must be an object", undefined);
    if (params.format !== undefined && params.format !== "opus") {
      return reject("bad_hello", "audio_params.format must be opus", undefined);
    }
    const rate = params.sample_rate ?? 16000;
    if (typeof rate !== "number" || !OPUS_SAMPLE_RATES.has(rate)) {
      return reject("bad_hello", "audio_params.sample_rate is not an Opus rate", undefined);
    }
    const channels = params.channels ?? 1;
    if (channels !== 1) return reject("bad_hello", "audio_params.channels must be 1", undefined);
    const frame = params.frame_duration ?? 60;
    if (typeof frame !== "number" || ![10, 20, 40, 60, 80, 100, 120].includes(frame)) {
      return reject("bad_hello", "audio_params.frame_duration is not an Opus frame size", undefined);
    }
    audio = { sampleRate: rate, channels: 1, frameDurationMs: frame };
  }
  const features = isObject(value.features) ? value.features : {};
  return ok({
    type: "hello",
    audio,
    features: { mcp: features.mcp === true, aec: features.aec === true },
  });
}

function ok(message: DeviceMessage): ParsedDeviceMessage {
  return { ok: true, message };
}

function reject(
  reason: MessageRejection,
  detail: string,
  sessionId: string | undefined,
): ParsedDeviceMessage {
  return { ok: false, reason, detail, sessionId };
}

/**
 * A device's value, short, for a rejection's detail. Never String() or JSON.stringify of an
 * array or object: both recurse, and 3,300 nested arrays (6.6 KB) overflow the stack.
 */
function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  if (value === undefined) return "missing";
  return Array.isArray(value) ? "(an array)" : "(an object)";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- server -> device ----------------------------------------------------------------

/** What we tell devices about downstream audio: Opus 24 kHz mono, 60 ms (both references). */
export const DOWNSTREAM_AUDIO = {
  format: "opus",
  sample_rate: DOWN_RATE,
  channels: 1,
  frame_duration: DOWN_FRAME_MS,
} as const;

export interface HelloReplyFields {
  readonly sessionId: string;
  readonly udpServer: string;
  readonly udpPort: number;
  readonly key: Buffer;
  readonly nonce: Buffer;
}

export function helloReply(f: HelloReplyFields): JsonObject {
  return {
    type: "hello",
    version: 3,
    session_id: f.sessionId,
    transport: "udp",
    udp: {
      server: f.udpServer,
      port: f.udpPort,
      encryption: "aes-128-ctr",
      key: f.key.toString("hex"),
      nonce: f.nonce.toString("hex"),
    },
    audio_params: { ...DOWNSTREAM_AUDIO },
  };
}

export function ttsMessage(
  sessionId: string,
  state: "start" | "stop" | "sentence_start",
  text?: string,
): JsonObject {
  const msg: JsonObject = { type: "tts", state, session_id: sessionId };
  if (text !== undefined) msg.text = text;
  return msg;
}

export function goodbyeMessage(sessionId: string, reason?: string): JsonObject {
  const msg: JsonObject = { type: "goodbye", session_id: sessionId };
  if (reason !== undefined) msg.reason = reason;
  return msg;
}

export function sttMessage(sessionId: string, text: string): JsonObject {
  return { type: "stt", text, session_id: sessionId };
}

export function llmMessage(sessionId: string, emotion: string, text?: string): JsonObject {
  const msg: JsonObject = { type: "llm", emotion, session_id: sessionId };
  if (text !== undefined) msg.text = text;
  return msg;
}

export function mcpMessage(sessionId: string, payload: JsonObject): JsonObject {
  return { type: "mcp", payload, session_id: sessionId };
}
