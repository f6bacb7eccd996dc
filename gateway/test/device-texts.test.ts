import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeviceTexts } from "../src/agent/livekit/agent-protocol/device-texts.ts";
import { REPEAT_WINDOW_MS } from "../src/agent/livekit/agent-protocol/signals.ts";
import { MAX_OPEN_STREAMS } from "../src/agent/livekit/agent-protocol/transcription.ts";
import type { TextStreamChunk } from "../src/agent/livekit/room-transport.ts";

const DEVICE = "02:00:00:00:00:01";

function chunk(
  streamId: string,
  from: string,
  text: string,
  done: boolean,
  topic = "lk.transcription",
): TextStreamChunk {
  return { streamId, topic, from, attributes: {}, text, done };
}

describe("what the device is shown of the conversation", () => {
  it("the user's final transcript as stt, the agent's sentence as sentence_start", () => {
    const t = new DeviceTexts(DEVICE);
    assert.deepEqual(t.chunk(chunk("u1", DEVICE, "hello", true), 0), {
      show: { kind: "stt", text: "hello" },
    });
    assert.deepEqual(t.chunk(chunk("a1", "agent-1", "Hi there.", true), 0), {
      show: { kind: "sentence", text: "Hi there." },
    });
  });

  it("the same transcript by the agent's message and the text stream is shown once", () => {
    const t = new DeviceTexts(DEVICE);
    assert.deepEqual(t.stt("turn on the light", 1000), { show: { kind: "stt", text: "turn on the light" } });
    assert.deepEqual(t.chunk(chunk("u1", DEVICE, "turn on the light", true), 2000), {});
  });

  it("the message's transcript is trimmed as the stream's is: whitespace does not defeat the repeat check", () => {
    const t = new DeviceTexts(DEVICE);
    // Whisper-style STT transcripts start with a space; the stream's text is trimmed.
    assert.deepEqual(t.stt(" turn on the light", 1000), { show: { kind: "stt", text: "turn on the light" } });
    assert.deepEqual(t.chunk(chunk("u1", DEVICE, " turn on the light", true), 2000), {});
    assert.deepEqual(t.stt("  ", 3000), {}, "an empty transcript shows nothing, as an empty stream");
  });

  it("the same words said again after the repeat window are shown again", () => {
    const t = new DeviceTexts(DEVICE);
    t.stt("yes", 0);
    assert.deepEqual(t.stt("yes", REPEAT_WINDOW_MS), { show: { kind: "stt", text: "yes" } });
  });

  it("the same sentence twice within the window is shown once", () => {
    const t = new DeviceTexts(DEVICE);
    t.chunk(chunk("a1", "agent-1", "Done.", true), 0);
    assert.deepEqual(t.chunk(chunk("a2", "agent-1", "Done.", true), 100), {});
  });

  it("a topic other than lk.transcription shows nothing", () => {
    const t = new DeviceTexts(DEVICE);
    assert.deepEqual(t.chunk(chunk("c1", "agent-1", "chat", true, "lk.chat"), 0), {});
  });

  it("a stream past the open-stream bound is dropped with its reason", () => {
    const t = new DeviceTexts(DEVICE);
    for (let i = 0; i < MAX_OPEN_STREAMS; i++) t.chunk(chunk(`s${i}`, "agent-1", "x", false), 0);
    assert.deepEqual(t.chunk(chunk("one-more", "agent-1", "x", false), 0), {
      drop: "agent_text_too_many_streams",
    });
  });
});
