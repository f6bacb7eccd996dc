import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeviceTexts } from "../src/agent/livekit/agent-protocol/device-texts.ts";
import { REPEAT_WINDOW_MS } from "../src/agent/livekit/agent-protocol/signals.ts";
import {
  MAX_OPEN_STREAMS,
  SENDER_LEFT_GRACE_MS,
  STALE_STREAM_MS,
} from "../src/agent/livekit/agent-protocol/transcription.ts";
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

  it("a stream past the bound after STALE_STREAM_MS of silence from every open one is shown, a stale one released", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++) t.chunk(chunk(`s${i}`, "agent-1", "x", false), 0);
    assert.deepEqual(t.chunk(chunk("u1", DEVICE, "turn on the light", true), STALE_STREAM_MS), {
      show: { kind: "stt", text: "turn on the light" },
      released: "stale",
    });
  });
});

describe("a stream whose first chunk comes after its sender left", () => {
  const GRACE = SENDER_LEFT_GRACE_MS;

  it("on the device's behalf, after the last agent left: released SENDER_LEFT_GRACE_MS after that leave", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    t.participantLeft("agent-1", 1000);
    t.chunk(chunk("late", DEVICE, "turn on", false), 1200);
    // The agent comes back and stays: it did not send that stream, and nothing else ends it.
    t.agentJoined("agent-1");
    assert.equal(t.nextDeadline(), 1000 + GRACE);
    assert.equal(t.tick(1000 + GRACE - 1), 0);
    assert.equal(t.tick(1000 + GRACE), 1);
  });

  it("under an agent's identity, after that agent left: released SENDER_LEFT_GRACE_MS after its leave", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    t.participantLeft("agent-1", 1000);
    t.chunk(chunk("late", "agent-1", "Half a ", false), 1200);
    assert.equal(t.nextDeadline(), 1000 + GRACE);
    assert.equal(t.tick(1000 + GRACE), 1);
  });

  it("after the grace: released at the next tick, and its rest is ignored", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    t.participantLeft("agent-1", 0);
    t.chunk(chunk("late", DEVICE, "turn ", false), 2 * GRACE);
    assert.equal(t.nextDeadline(), GRACE);
    assert.equal(t.tick(2 * GRACE), 1);
    assert.deepEqual(t.chunk(chunk("late", DEVICE, "on", true), 2 * GRACE), {});
  });

  it("one that ends within the grace is shown, and not released", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    t.participantLeft("agent-1", 0);
    t.chunk(chunk("bye", "agent-1", "Good", false), 100);
    assert.deepEqual(t.chunk(chunk("bye", "agent-1", "bye.", true), 200), {
      show: { kind: "sentence", text: "Goodbye." },
    });
    assert.equal(t.tick(GRACE), 0);
  });

  it("an agent back under the same identity has its new streams kept", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-1");
    t.participantLeft("agent-1", 0);
    t.agentJoined("agent-1");
    t.chunk(chunk("a1", "agent-1", "Hello ", false), 100);
    assert.equal(t.nextDeadline(), undefined);
    assert.equal(t.tick(10 * GRACE), 0);
    assert.deepEqual(t.chunk(chunk("a1", "agent-1", "again.", true), 200), {
      show: { kind: "sentence", text: "Hello again." },
    });
  });

  it("MAX_OPEN_STREAMS of them (agents come and go) do not refuse later transcriptions", () => {
    const t = new DeviceTexts(DEVICE);
    t.agentJoined("agent-stays");
    let now = 0;
    for (let i = 0; i < MAX_OPEN_STREAMS; i++, now += 10) {
      t.agentJoined(`agent-${i}`);
      t.participantLeft(`agent-${i}`, now);
      t.chunk(chunk(`late-${i}`, `agent-${i}`, "Half a ", false), now + 1);
    }
    assert.equal(t.tick(now + GRACE), MAX_OPEN_STREAMS);
    assert.deepEqual(t.chunk(chunk("next", "agent-stays", "Hi.", true), now + GRACE), {
      show: { kind: "sentence", text: "Hi." },
    });
  });
});
