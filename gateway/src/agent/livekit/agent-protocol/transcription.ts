/**
 * LiveKit Agents' transcriptions (text streams on topic `lk.transcription`) turned into
 * device messages. The stream's sender is the transcribed participant (LiveKit docs, "Text
 * and transcriptions"): the device's own identity for what the user said, the agent's for
 * what it says. A user segment goes to the device as `stt` when final
 * (`lk.transcription_final`); an agent segment as `tts sentence_start` once complete.
 * A stream that failed (closed `aborted`) is dropped without output: its text is not whole.
 * Pure and bounded: at most MAX_OPEN_STREAMS streams and MAX_TEXT_CHARS per stream.
 *
 * A stream whose senders have all left the room is released (`participantLeft`): nothing
 * can end it any more, and neither SDK ends all of them (the Go SDK ends none; rtc-node's
 * ends those sent under the departed identity, not those an agent sent on the device's
 * behalf). Kept, each held a place for the rest of the session, and an agent that came
 * back was refused its transcriptions once 16 were held. A stream under the agent's own
 * identity is that agent's; one under the device's identity was sent by an agent on its
 * behalf, taken to be one of the agents in the room at its first chunk (any agent, if none
 * was known then).
 */
import type { TextStreamChunk } from "../room-transport.ts";
import { MAX_TEXT_CHARS } from "./agent-messages.ts";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
export const MAX_OPEN_STREAMS = 16;

export type DeviceText = { readonly kind: "stt" | "sentence"; readonly text: string };

export type TranscriptionResult =
  | { readonly ok: true; readonly out: DeviceText | undefined }
  | { readonly ok: false; readonly reason: "too_many_streams" };

/** Ignored streams remembered until their end (oldest forgotten first beyond this). */
const MAX_IGNORED_STREAMS = 64;

/** An open stream's text so far, and who can still end it (undefined: any agent). */
type OpenStream = { text: string; readonly senders: Set<string> | undefined };

export class Transcriptions {
  readonly #self: string;
  readonly #open = new Map<string, OpenStream>();
  /** The agents in the room (agentJoined, participantLeft). */
  readonly #agents = new Set<string>();
  /**
   * Streams refused at their first chunk, or released before their end: the rest of one is
   * ignored, or a place freed before its end took its later chunks as a new stream and
   * showed the text without its beginning.
   */
  readonly #ignored = new Set<string>();

  /** `self`: the gateway's own participant identity in the room (the device). */
  constructor(self: string) {
    this.#self = self;
  }

  agentJoined(identity: string): void {
    this.#agents.add(identity);
  }

  /**
   * A participant left: the open streams it was the last possible sender of are released,
   * the rest of each ignored. Returns how many were released.
   */
  participantLeft(identity: string): number {
    this.#agents.delete(identity);
    let released = 0;
    for (const [streamId, stream] of this.#open) {
      stream.senders?.delete(identity);
      if (stream.senders ? stream.senders.size > 0 : this.#agents.size > 0) continue;
      this.#open.delete(streamId);
      this.#ignore(streamId);
      released++;
    }
    return released;
  }

  chunk(c: TextStreamChunk): TranscriptionResult {
    if (this.#ignored.has(c.streamId)) {
      if (c.done) this.#ignored.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    if (c.aborted) {
      this.#open.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    let stream = this.#open.get(c.streamId);
    if (stream === undefined) {
      if (this.#open.size >= MAX_OPEN_STREAMS) {
        if (!c.done) this.#ignore(c.streamId);
        return { ok: false, reason: "too_many_streams" };
      }
      stream = { text: "", senders: this.#sendersOf(c.from) };
    }
    if (stream.text.length < MAX_TEXT_CHARS) stream.text = (stream.text + c.text).slice(0, MAX_TEXT_CHARS);
    if (!c.done) {
      this.#open.set(c.streamId, stream);
      return { ok: true, out: undefined };
    }
    this.#open.delete(c.streamId);
    const trimmed = stream.text.trim();
    if (trimmed.length === 0) return { ok: true, out: undefined };
    if (c.from === this.#self) {
      const final = c.attributes["lk.transcription_final"];
      return { ok: true, out: final === "false" ? undefined : { kind: "stt", text: trimmed } };
    }
    return { ok: true, out: { kind: "sentence", text: trimmed } };
  }

  clear(): void {
    this.#open.clear();
    this.#ignored.clear();
    this.#agents.clear();
  }

  /** Under the device's identity: an agent's on its behalf, one of those in the room now. */
  #sendersOf(from: string): Set<string> | undefined {
    if (from !== this.#self) return new Set([from]);
    return this.#agents.size > 0 ? new Set(this.#agents) : undefined;
  }

  #ignore(streamId: string): void {
    if (this.#ignored.size >= MAX_IGNORED_STREAMS) {
      const oldest = this.#ignored.values().next().value;
      if (oldest !== undefined) this.#ignored.delete(oldest);
    }
    this.#ignored.add(streamId);
  }
}
