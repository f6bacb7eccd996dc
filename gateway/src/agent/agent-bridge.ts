/**
 * The seam between a device session and whatever answers it: the echo agent here, a
 * LiveKit room with an AI agent in production. Narrow on purpose: PCM frames both ways
 * and a few control events.
 */
import type { JsonObject, ListenMode } from "../protocol/messages.ts";

/** Events from the device that an agent may care about. */
export type DeviceEvent =
  | { readonly kind: "listen_start"; readonly mode: ListenMode }
  | { readonly kind: "listen_stop" }
  | { readonly kind: "wake_word"; readonly text: string }
  | { readonly kind: "abort"; readonly reason: string | undefined }
  | { readonly kind: "mcp"; readonly payload: JsonObject }
  | { readonly kind: "device_goodbye" };

/** What an agent can do to its device. The session implements it. */
export interface AgentSink {
  /** The agent starts speaking: the device gets `tts start` before the first frame. */
  speechStart(text?: string): void;
  /**
   * Agent voice, PCM16 LE mono at 24 kHz, any length; the session frames it (60 ms). Only
   * within a turn (after speechStart): audio outside one is dropped and counted, so audio
   * still in flight after a device abort never restarts playback.
   */
  audio(pcm: Buffer): void;
  /** The agent stopped speaking: the last frames go out, then `tts stop`. */
  speechEnd(): void;
  /** A control message for the device (stt, llm, mcp, ...). */
  sendToDevice(message: JsonObject): void;
  /** The agent ends the session: the device gets `goodbye`. */
  endSession(reason: "agent_ended" | "agent_failed"): void;
}

/** One upstream Opus packet exactly as the device sent it (decrypted, sanity-checked). */
export interface UpstreamOpus {
  readonly opus: Buffer;
  /** The frame duration the device announced in its hello: 20, 40 or 60 ms. */
  readonly durationMs: number;
  /** The device's encoder rate from its hello (16000 for current firmware). */
  readonly sampleRate: number;
  /**
   * The packet's UDP sequence: strictly increasing within the session (upstream-guard.ts),
   * one per packet the device sent, so a gap is packets lost on the way.
   */
  readonly sequence: number;
}

export interface AgentBridge {
  /** The device's voice: PCM16 LE mono, one decoded frame (at the device's rate). */
  pushAudio(pcm: Buffer, sampleRate: number): void;
  /**
   * A bridge that implements this takes the device's Opus packets as they came and the
   * session decodes nothing for it (the LiveKit media process forwards them unchanged);
   * without it the session decodes in the Opus pool and calls pushAudio.
   */
  pushOpus?(frame: UpstreamOpus): void;
  onDeviceEvent(event: DeviceEvent): void;
  /**
   * The session is about to close for inactivity. A bridge that implements this lets its
   * agent say goodbye first and resolves when it has (bounded by the bridge; the session
   * also caps the wait); the session then closes. Never rejects.
   */
  farewell?(): Promise<void>;
  /** Releases everything (rooms, timers, listeners). Never throws. */
  close(): Promise<void>;
}

export interface AgentSessionInfo {
  readonly sessionId: string;
  readonly clientId: string;
  readonly mac: string;
}

export type AgentFactory = (info: AgentSessionInfo, sink: AgentSink) => AgentBridge;
