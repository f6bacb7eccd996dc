/**
 * The `lk.transcription` text streams a fake agent (fake-agents.ts) writes, as LiveKit
 * Agents' framework writes them: the user's words on the device's behalf, the agent's own,
 * one left open, one that fails.
 */
import type { Room } from "@livekit/rtc-node";

export class FakeAgentTexts {
  readonly #room: Room;

  /** `room`: the agent's room, written to through its local participant once connected. */
  constructor(room: Room) {
    this.#room = room;
  }

  /** The user's final transcript, as the framework's stream on the device's behalf. */
  async transcribed(text: string, deviceIdentity: string): Promise<void> {
    const writer = await this.#room.localParticipant?.streamText({
      topic: "lk.transcription",
      attributes: { "lk.transcription_final": "true", "lk.segment_id": "SG_1" },
      senderIdentity: deviceIdentity,
    });
    await writer?.write(text);
    await writer?.close();
  }

  /**
   * A transcription still being written when the agent goes: the stream is opened (on the
   * device's behalf with `deviceIdentity`, as the framework sends the user's words) and
   * `text` written, and it is never closed.
   */
  async transcribing(text: string, deviceIdentity?: string): Promise<void> {
    const writer = await this.#room.localParticipant?.streamText({
      topic: "lk.transcription",
      attributes: { "lk.transcription_final": "true", "lk.segment_id": "SG_4" },
      ...(deviceIdentity === undefined ? {} : { senderIdentity: deviceIdentity }),
    });
    await writer?.write(text);
  }

  /** The agent's own words, as the framework publishes them. */
  async said(text: string): Promise<void> {
    const writer = await this.#room.localParticipant?.streamText({
      topic: "lk.transcription",
      attributes: { "lk.transcription_final": "true", "lk.segment_id": "SG_2" },
    });
    await writer?.write(text);
    await writer?.close();
  }

  /**
   * The agent's words in a stream that fails: its writer is aborted with `reason`, which
   * rtc-node sends as the stream's trailer reason, so the receiving SDK fails the stream.
   */
  async saidThenFailed(text: string, reason: string): Promise<void> {
    const writer = await this.#room.localParticipant?.streamText({
      topic: "lk.transcription",
      attributes: { "lk.transcription_final": "true", "lk.segment_id": "SG_3" },
    });
    await writer?.write(text);
    // rtc-node 1.x's TextStreamWriter offers no abort; the web stream under it does, and
    // its sink closes the stream with the error's message as the reason.
    const sink = writer as unknown as { defaultWriter: WritableStreamDefaultWriter<string> } | undefined;
    await sink?.defaultWriter.abort(new Error(reason));
  }
}
