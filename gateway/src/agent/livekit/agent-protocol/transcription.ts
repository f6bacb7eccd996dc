/**
 * LiveKit Agents' transcriptions (text streams on topic `lk.transcription`) turned into
 * device messages. The stream's sender is the transcribed participant (LiveKit docs, "Text
 * and transcriptions"): the device's own identity for what the user said, the agent's for
 * what it says. A user segment goes to the device as `stt` when final
 * (`lk.transcription_final`); an agent segment as `tts sentence_start` once complete.
 * A stream that failed (closed `aborted`) is dropped without output: its text is not whole.
 * Pure and bounded: at most MAX_OPEN_STREAMS streams and MAX_TEXT_CHARS per stream.
 */
import type { TextStreamChunk } from "../room-transport.ts";
import { MAX_TEXT_CHARS } from "./agent-messages.ts";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
export const MAX_OPEN_STREAMS = 16;

export type DeviceText = { readonly kind: "stt" | "sentence"; readonly text: string };

export type TranscriptionResult =
  | { readonly ok: true; readonly out: DeviceText | undefined }
  | { readonly ok: false; readonly reason: "too_many_streams" };

/** Refused streams remembered until their end (oldest forgotten first beyond this). */
const MAX_REFUSED_STREAMS = 64;

export class Transcriptions {
  readonly #self: string;
  readonly #open = new Map<string, string>();
  /**
   * Streams refused at their first chunk: the rest of one is ignored, or a place freed
   * before its end took its later chunks as a new stream and showed the text without its
   * beginning.
   */
  readonly #refused = new Set<string>();

  /** `self`: the gateway's own participant identity in the room (the device). */
  constructor(self: string) {
    this.#self = self;
  }

  chunk(c: TextStreamChunk): TranscriptionResult {
    if (this.#refused.has(c.streamId)) {
      if (c.done) this.#refused.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    if (c.aborted) {
      this.#open.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    let text = this.#open.get(c.streamId);
    if (text === undefined) {
      if (this.#open.size >= MAX_OPEN_STREAMS) {
        if (!c.done) this.#refuse(c.streamId);
        return { ok: false, reason: "too_many_streams" };
      }
      text = "";
    }
    if (text.length < MAX_TEXT_CHARS) text = (text + c.text).slice(0, MAX_TEXT_CHARS);
    if (!c.done) {
      this.#open.set(c.streamId, text);
      return { ok: true, out: undefined };
    }
    this.#open.delete(c.streamId);
    const trimmed = text.trim();
    if (trimmed.length === 0) return { ok: true, out: undefined };
    if (c.from === this.#self) {
      const final = c.attributes["lk.transcription_final"];
      return { ok: true, out: final === "false" ? undefined : { kind: "stt", text: trimmed } };
    }
    return { ok: true, out: { kind: "sentence", text: trimmed } };
  }

  clear(): void {
    this.#open.clear();
    this.#refused.clear();
  }

  #refuse(streamId: string): void {
    if (this.#refused.size >= MAX_REFUSED_STREAMS) {
      const oldest = this.#refused.values().next().value;
      if (oldest !== undefined) this.#refused.delete(oldest);
    }
    this.#refused.add(streamId);
  }
}
