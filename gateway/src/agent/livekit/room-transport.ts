/**
 * How one device session's LiveKit room is joined and how bytes move through it. Two
 * implementations sit behind this seam (`LIVEKIT_MEDIA`):
 *
 * - `process` (default): a Go media process per gateway instance, on LiveKit's server SDK,
 *   one participant per session; device Opus is forwarded unchanged, the agent's Opus RTP
 *   comes back and is decoded in the Opus worker pool (docs/media-process.md).
 * - `rtc-node`: `@livekit/rtc-node` in the gateway process (decoded PCM both ways).
 *
 * A transport only moves bytes and reports what happened in the room. What the messages
 * mean (the agent protocol: greeting, turn framing, MCP, abort) is decided in TypeScript
 * above it, so it can never drift between transports. Room creation, tokens, dispatch and
 * deletion are the server API's job (services.ts), not the transport's.
 */
import type { UpstreamOpus } from "../agent-bridge.ts";

/** LiveKit's participant kind (livekit_models.proto ParticipantInfo.Kind). */
export type ParticipantKind = "standard" | "agent" | "ingress" | "egress" | "sip" | "other";

export interface RemoteParticipantInfo {
  readonly identity: string;
  readonly kind: ParticipantKind;
  /** The participant's attributes at the time of the event (e.g. `lk.agent.state`). */
  readonly attributes: Readonly<Record<string, string>>;
}

/** One piece of a LiveKit text stream (data streams: `lk.transcription` and others). */
export interface TextStreamChunk {
  readonly streamId: string;
  readonly topic: string;
  readonly from: string;
  /** The stream header's attributes (e.g. `lk.transcription_final`, `lk.segment_id`). */
  readonly attributes: Readonly<Record<string, string>>;
  /** Text received since the previous chunk of this stream (may be empty). */
  readonly text: string;
  /** True once the stream is closed: no chunk of this stream follows. */
  readonly done: boolean;
  /**
   * With `done`: the stream failed before its end (a missed chunk, a length off its
   * header's, a trailer with a reason: LiveKit's Rust SDK's checks, which the media
   * process's patched Go SDK makes too), so its text is incomplete.
   */
  readonly aborted?: boolean;
}

/** What a transport reports. Every callback is called on the gateway's event loop. */
export interface RoomTransportHandlers {
  participantJoined(participant: RemoteParticipantInfo): void;
  participantLeft(identity: string): void;
  /** The participant's full attribute set after a change. */
  attributesChanged(identity: string, attributes: Readonly<Record<string, string>>): void;
  /** A data packet (reliable or lossy), with its topic when it has one. */
  data(payload: Uint8Array, topic: string | undefined, from: string | undefined): void;
  text(chunk: TextStreamChunk): void;
  /** Agent voice: PCM16 LE mono at 24 kHz, in order, any length. */
  agentAudio(pcm: Buffer): void;
  /**
   * The room is lost for good (deleted under us, kicked, connection lost, media process
   * gone). Called at most once, never after leave().
   */
  disconnected(reason: string): void;
}

export interface RoomJoin {
  /** The server's WebSocket URL (`ws://` or `wss://`). */
  readonly url: string;
  readonly roomName: string;
  /** A token for this room only (services.ts mints it). */
  readonly token: string;
}

export interface RoomTransport {
  /** Joins the room and publishes the device's microphone track. Rejects on failure. */
  join(): Promise<void>;
  /** Device voice as decoded PCM16 LE mono (rtc-node). */
  pushPcm(pcm: Buffer, sampleRate: number): void;
  /**
   * Device voice as the device's own Opus packet (media process). Present only on
   * transports that forward Opus; then the session decodes nothing for this room.
   */
  pushOpus?(frame: UpstreamOpus): void;
  /** A reliable data packet to the room, with an optional topic. */
  sendData(payload: Uint8Array, topic?: string): Promise<void>;
  /** Leaves the room and releases every listener, buffer and timer. Never throws. */
  leave(): Promise<void>;
}

export type RoomTransportFactory = (join: RoomJoin, handlers: RoomTransportHandlers) => RoomTransport;
