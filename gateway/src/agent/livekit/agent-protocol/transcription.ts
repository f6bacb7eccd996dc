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
 *
 * A stream whose sender stays in the room but never ends it (an agent whose writer was
 * abandoned mid-stream: an exception in its transcription forwarder, a cancelled task, a
 * failed write) is stale once it has had no chunk for STALE_STREAM_MS. A new stream that
 * finds every place held, none of them a departed sender's, takes the place of the least
 * recently active stream if that one is stale (released then, counted); otherwise it is
 * refused as before. Stale streams are released only to make room, never at `tick`: a
 * stream that is merely slow keeps its text unless a new stream needs its place, and no
 * new stream is refused while a stale one holds a place. Until 2026-12-07 each such stream held
 * its place for the rest of the session, and 16 of them refused every later transcription.
 */
import type { TextStreamChunk } from "../room-transport.ts";
import { MAX_TEXT_CHARS } from "./agent-messages.ts";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
export const MAX_OPEN_STREAMS = 16;

export type DeviceText = { readonly kind: "stt" | "sentence"; readonly text: string };

/**
 * Why an open stream was released to make room for a new one: its senders had all left
 * (`sender_left`), or it had had no chunk for STALE_STREAM_MS (`stale`).
 */
export type StreamRelease = "sender_left" | "stale";

export type TranscriptionResult =
  | {
      readonly ok: true;
      readonly out: DeviceText | undefined;
      /** An open stream released to make room for this one, and why. */
      readonly released?: StreamRelease;
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

/**
 * How long an open stream may go without a chunk before a new stream that finds every place
 * held may take its place. From how LiveKit Agents (Python, voice/room_io/_output.py,
 * `_ParticipantStreamTranscriptionOutput`) writes them: the user's words (under the
 * device's identity) go one stream per interim or final transcript, opened, written once
 * and closed at once, so a legit one is never quiet; the agent's words go one stream per
 * reply, opened at its first text and closed at the reply's end (`flush`), written as the
 * text comes: the LLM's deltas, or with transcription sync (voice/transcription/
 * synchronizer.py) word by word at the pace of the audio played, a fraction of a second
 * apart. Its longest legit silences: an LLM or TTS stalling mid-reply, which request
 * timeouts end within 5-10 s (the OpenAI plugin's 5 s read timeout, APIConnectOptions'
 * 10 s default; the forwarder's `finally` then closes the stream); the agent's speech
 * paused while the user talks over it (false-interruption handling), until the user's
 * final transcript interrupts it or 2 s (the default `false_interruption_timeout`) after
 * the user stops, when it resumes. 30 s is well past all of these; and since a stale
 * stream is taken only when all 16 places are held, the least recently active first, a
 * legit stream quiet that long loses its text only if the 15 others were all written to
 * more recently. It is short enough that after a burst of abandoned streams (a connection
 * glitch failing each write) transcriptions are refused for at most 30 s, not for the rest
 * of the session.
 */
export const STALE_STREAM_MS = 30_000;

/** Ignored streams remembered until their end (oldest forgotten first beyond this). */
const MAX_IGNORED_STREAMS = 64;

/** Departed agents remembered until they come back (oldest forgotten first beyond this). */
const MAX_DEPARTED_AGENTS = 16;

/**
 * An open stream's text so far, who can still end it (undefined: any agent), once they
 * have all left, when it is released, and when its last chunk came (STALE_STREAM_MS).
 */
type OpenStream = {
  text: string;
  readonly senders: Set<string> | undefined;
  releaseAt: number | undefined;
  lastChunkAt: number;
};

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

  /** A chunk that came at `now`. */
  chunk(c: TextStreamChunk, now: number): TranscriptionResult {
    if (this.#ignored.has(c.streamId)) {
      if (c.done) this.#ignored.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    if (c.aborted) {
      this.#open.delete(c.streamId);
      return { ok: true, out: undefined };
    }
    let stream = this.#open.get(c.streamId);
    let released: StreamRelease | undefined;
    if (stream === undefined) {
      if (this.#open.size >= MAX_OPEN_STREAMS) {
        released = this.#makeRoom(now);
        if (released === undefined) {
          if (!c.done) this.#ignore(c.streamId);
          return { ok: false, reason: "too_many_streams" };
        }
      }
      stream = this.#opened(c.from, now);
    }
    stream.lastChunkAt = now;
    const out = this.#take(c, stream);
    return released ? { ok: true, out, released } : { ok: true, out };
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

  /**
   * Frees a place for a new stream at `now`: a departed sender's stream first (nothing can
   * end it), else the least recently active stream if it is stale. Why, if one was freed.
   */
  #makeRoom(now: number): StreamRelease | undefined {
    const departed = this.#soonestReleased();
    if (departed !== undefined) {
      this.#release(departed.id);
      return "sender_left";
    }
    let quietest: { id: string; at: number } | undefined;
    for (const [id, stream] of this.#open)
      if (quietest === undefined || stream.lastChunkAt < quietest.at)
        quietest = { id, at: stream.lastChunkAt };
    if (quietest === undefined || now - quietest.at < STALE_STREAM_MS) return undefined;
    this.#release(quietest.id);
    return "stale";
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
   * A new stream from `from`, first seen at `now`: who can end it (under the device's
   * identity, an agent's on its behalf, one of those in the room now), and when it is
   * released if they have all left already.
   */
  #opened(from: string, now: number): OpenStream {
    if (from !== this.#self) {
      const leftAt = this.#departed.get(from);
      return { text: "", senders: new Set([from]), releaseAt: this.#releaseAfter(leftAt), lastChunkAt: now };
    }
    if (this.#agents.size > 0)
      return { text: "", senders: new Set(this.#agents), releaseAt: undefined, lastChunkAt: now };
    const goneAt = this.#agentsGoneAt;
    return {
      text: "",
      senders: goneAt === undefined ? undefined : new Set(),
      releaseAt: this.#releaseAfter(goneAt),
      lastChunkAt: now,
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
