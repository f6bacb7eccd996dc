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
 *
 * A stream whose first chunk comes after its senders have all left (an agent that left and
 * has not come back; under the device's identity, the last agent in the room having left)
 * goes by the same rule: released SENDER_LEFT_GRACE_MS after that leave, at the next
 * `tick` if that has passed. Opened as one of the agents still in the room, or any agent,
 * it held its place for the rest of the session once an agent came back (or another
 * stayed): no leave that came later was one of its senders'.
 *
 * The release waits SENDER_LEFT_GRACE_MS (`tick`): a stream's end and its sender's leave
 * come by different paths, and an agent that ends its goodbye and leaves at once can be
 * seen leaving first. Meanwhile the stream's chunks and end are taken as usual, and one
 * that ends is shown, not released. A new stream that finds every place held takes the
 * place of such a departed sender's stream at once (released then), so the wait refuses
 * no one.
 */
import type { TextStreamChunk } from "../room-transport.ts";
import { MAX_TEXT_CHARS } from "./agent-messages.ts";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
export const MAX_OPEN_STREAMS = 16;

export type DeviceText = { readonly kind: "stt" | "sentence"; readonly text: string };

export type TranscriptionResult =
  | {
      readonly ok: true;
      readonly out: DeviceText | undefined;
      /** A departed sender's stream released early to make room for this one. */
      readonly released?: true;
    }
  | { readonly ok: false; readonly reason: "too_many_streams" };

/**
 * How long the open streams of a sender that left are still taken before they are released.
 * The leave comes by the signalling connection, a stream's chunks and end by the data
 * channel, and with the media process from separate goroutines too (the SDK's callback
 * and the stream's reader): nothing orders a stream's end before its sender's leave, and
 * released at the leave, an agent's last sentence (its goodbye) was lost though it had
 * been sent whole. Far longer than that skew (milliseconds: both come from the same
 * server), yet short: the release is counted that much later, and until then the stream
 * keeps its text (at most MAX_TEXT_CHARS) and its place (yielded to a new stream at once).
 */
export const SENDER_LEFT_GRACE_MS = 1500;

/** Ignored streams remembered until their end (oldest forgotten first beyond this). */
const MAX_IGNORED_STREAMS = 64;

/** Departed agents remembered until they come back (oldest forgotten first beyond this). */
const MAX_DEPARTED_AGENTS = 16;

/**
 * An open stream's text so far, who can still end it (undefined: any agent), and once they
 * have all left, when it is released.
 */
type OpenStream = { text: string; readonly senders: Set<string> | undefined; releaseAt: number | undefined };

export class Transcriptions {
  readonly #self: string;
  readonly #open = new Map<string, OpenStream>();
  /** The agents in the room (agentJoined, participantLeft). */
  readonly #agents = new Set<string>();
  /** Agents that left and have not come back, and when they left. */
  readonly #departed = new Map<string, number>();
  /** When the last agent in the room left; undefined while one is in it, or before any came. */
  #agentsGoneAt: number | undefined;
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
    this.#departed.delete(identity);
    this.#agentsGoneAt = undefined;
  }

  /**
   * A participant left at `now`: the open streams it was the last possible sender of are
   * released SENDER_LEFT_GRACE_MS later (`tick`), unless they end before.
   */
  participantLeft(identity: string, now: number): void {
    if (this.#agents.delete(identity)) this.#agentLeft(identity, now);
    for (const stream of this.#open.values()) {
      stream.senders?.delete(identity);
      if (stream.releaseAt !== undefined) continue;
      if (stream.senders ? stream.senders.size > 0 : this.#agents.size > 0) continue;
      stream.releaseAt = now + SENDER_LEFT_GRACE_MS;
    }
  }

  /** When the next release is due (`tick`), if one is waiting. */
  nextDeadline(): number | undefined {
    return this.#soonestReleased()?.at;
  }

  /** Releases the streams whose grace has passed, the rest of each ignored. Returns how many. */
  tick(now: number): number {
    let released = 0;
    for (const [streamId, stream] of this.#open) {
      if (stream.releaseAt === undefined || stream.releaseAt > now) continue;
      this.#release(streamId);
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
    let released = false;
    if (stream === undefined) {
      if (this.#open.size >= MAX_OPEN_STREAMS) {
        const departed = this.#soonestReleased();
        if (departed === undefined) {
          if (!c.done) this.#ignore(c.streamId);
          return { ok: false, reason: "too_many_streams" };
        }
        this.#release(departed.id);
        released = true;
      }
      stream = this.#opened(c.from);
    }
    const out = this.#take(c, stream);
    return released ? { ok: true, out, released: true } : { ok: true, out };
  }

  clear(): void {
    this.#open.clear();
    this.#ignored.clear();
    this.#agents.clear();
    this.#departed.clear();
    this.#agentsGoneAt = undefined;
  }

  /** Adds a chunk to its open stream; the text to show once the stream has ended. */
  #take(c: TextStreamChunk, stream: OpenStream): DeviceText | undefined {
    if (stream.text.length < MAX_TEXT_CHARS) stream.text = (stream.text + c.text).slice(0, MAX_TEXT_CHARS);
    if (!c.done) {
      this.#open.set(c.streamId, stream);
      return undefined;
    }
    this.#open.delete(c.streamId);
    const trimmed = stream.text.trim();
    if (trimmed.length === 0) return undefined;
    if (c.from === this.#self) {
      const final = c.attributes["lk.transcription_final"];
      return final === "false" ? undefined : { kind: "stt", text: trimmed };
    }
    return { kind: "sentence", text: trimmed };
  }

  /** The open stream of departed senders released soonest, and when, if there is one. */
  #soonestReleased(): { readonly id: string; readonly at: number } | undefined {
    let soonest: { id: string; at: number } | undefined;
    for (const [id, stream] of this.#open)
      if (stream.releaseAt !== undefined && (soonest === undefined || stream.releaseAt < soonest.at))
        soonest = { id, at: stream.releaseAt };
    return soonest;
  }

  #release(streamId: string): void {
    this.#open.delete(streamId);
    this.#ignore(streamId);
  }

  #agentLeft(identity: string, now: number): void {
    if (this.#departed.size >= MAX_DEPARTED_AGENTS) {
      const oldest = this.#departed.keys().next().value;
      if (oldest !== undefined) this.#departed.delete(oldest);
    }
    this.#departed.set(identity, now);
    if (this.#agents.size === 0) this.#agentsGoneAt = now;
  }

  /**
   * A new stream from `from`: who can end it (under the device's identity, an agent's on
   * its behalf, one of those in the room now), and when it is released if they have all
   * left already.
   */
  #opened(from: string): OpenStream {
    if (from !== this.#self) {
      const leftAt = this.#departed.get(from);
      return { text: "", senders: new Set([from]), releaseAt: this.#releaseAfter(leftAt) };
    }
    if (this.#agents.size > 0) return { text: "", senders: new Set(this.#agents), releaseAt: undefined };
    const goneAt = this.#agentsGoneAt;
    return {
      text: "",
      senders: goneAt === undefined ? undefined : new Set(),
      releaseAt: this.#releaseAfter(goneAt),
    };
  }

  #releaseAfter(leftAt: number | undefined): number | undefined {
    return leftAt === undefined ? undefined : leftAt + SENDER_LEFT_GRACE_MS;
  }

  #ignore(streamId: string): void {
    if (this.#ignored.size >= MAX_IGNORED_STREAMS) {
      const oldest = this.#ignored.values().next().value;
      if (oldest !== undefined) this.#ignored.delete(oldest);
    }
    this.#ignored.add(streamId);
  }
}
