/**
 * What the device is shown of the conversation: the user's final transcripts (`stt`) and
 * the agent's sentences (`tts sentence_start`), from LiveKit Agents' transcription text
 * streams and from the agent's own messages. One text may come by both paths within a few
 * seconds (Agent A's `user_input_transcribed` and the framework's text stream): the second
 * is not shown again. Pure.
 */
import type { TextStreamChunk } from "../room-transport.ts";
import { type RecentText, repeatsRecent } from "./signals.ts";
import { type DeviceText, type StreamRelease, TRANSCRIPTION_TOPIC, Transcriptions } from "./transcription.ts";

/**
 * A text to show the device, or why a chunk was dropped (a counter's reason), or neither;
 * `released`: an open stream was released to make room, and why (transcription.ts).
 */
export type DeviceTextResult = {
  readonly show?: DeviceText;
  readonly drop?: string;
  readonly released?: StreamRelease;
};

export class DeviceTexts {
  readonly #streams: Transcriptions;
  #lastStt: RecentText | undefined;
  #lastSentence: RecentText | undefined;

  /** `self`: the gateway's own participant identity in the room (the device). */
  constructor(self: string) {
    this.#streams = new Transcriptions(self);
  }

  /** A chunk of a text stream; only `lk.transcription` is shown. */
  chunk(c: TextStreamChunk, now: number): DeviceTextResult {
    if (c.topic !== TRANSCRIPTION_TOPIC) return {};
    const r = this.#streams.chunk(c, now);
    if (!r.ok) return { drop: `agent_text_${r.reason}` };
    const shown = this.#shown(r.out, now);
    return r.released ? { ...shown, released: r.released } : shown;
  }

  /**
   * A final transcript of what the user said. Trimmed, as a stream's text is: the same
   * transcript by message and by stream is then one text for the repeat check.
   */
  stt(transcript: string, now: number): DeviceTextResult {
    const text = transcript.trim();
    if (text.length === 0 || repeatsRecent(this.#lastStt, text, now)) return {};
    this.#lastStt = { text, at: now };
    return { show: { kind: "stt", text } };
  }

  agentJoined(identity: string): void {
    this.#streams.agentJoined(identity);
  }

  /** A participant left: the open streams it was the last possible sender of are released soon. */
  participantLeft(identity: string, now: number): void {
    this.#streams.participantLeft(identity, now);
  }

  /** When `tick` next releases a departed sender's stream, if one waits. */
  nextDeadline(): number | undefined {
    return this.#streams.nextDeadline();
  }

  /** Releases the departed senders' streams due by `now`: how many. */
  tick(now: number): number {
    return this.#streams.tick(now);
  }

  /** A stream's text to show, unless it repeats the last one of its kind. */
  #shown(out: DeviceText | undefined, now: number): DeviceTextResult {
    if (!out) return {};
    if (out.kind === "stt") return this.stt(out.text, now);
    if (repeatsRecent(this.#lastSentence, out.text, now)) return {};
    this.#lastSentence = { text: out.text, at: now };
    return { show: out };
  }

  /** Forgets the open streams (the session closes). */
  clear(): void {
    this.#streams.clear();
  }
}
