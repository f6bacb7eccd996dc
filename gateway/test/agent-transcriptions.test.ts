/**
 * LiveKit Agents' transcriptions (lk.transcription text streams), as pure code: which
 * segments reach the device as stt or sentences, the bound on open streams, and the
 * release of streams whose senders left the room. The rest of the agent's protocol is in
 * agent-protocol.test.ts. No I/O, time injected.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_OPEN_STREAMS,
  SENDER_LEFT_GRACE_MS,
  Transcriptions,
} from "../src/agent/livekit/agent-protocol/transcription.ts";

describe("lk.transcription", () => {
  const base = { topic: "lk.transcription", attributes: {} as Record<string, string> };

  it("a final user segment (sent as the device) is stt", () => {
    const t = new Transcriptions("02:00:00:00:00:01");
    const from = "02:00:00:00:00:01";
    const attributes = { "lk.transcription_final": "true" };
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "turn on", done: false }), {
      ok: true,
      out: undefined,
    });
    t.chunk({ ...base, attributes, streamId: "s", from, text: " the light", done: false });
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "", done: true }), {
      ok: true,
      out: { kind: "stt", text: "turn on the light" },
    });
  });

  it("an interim user segment is not sent", () => {
    const t = new Transcriptions("me");
    const attributes = { "lk.transcription_final": "false" };
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from: "me", text: "tur", done: true }), {
      ok: true,
      out: undefined,
    });
  });

  it("the agent's segment is a tts sentence once complete", () => {
    const t = new Transcriptions("me");
    t.chunk({ ...base, streamId: "a", from: "agent-x", text: "Hello ", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "a", from: "agent-x", text: "there.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hello there." },
    });
  });

  it("refuses more than MAX_OPEN_STREAMS open streams", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "a", text: "x", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "one-more", from: "a", text: "x", done: false }), {
      ok: false,
      reason: "too_many_streams",
    });
  });

  it("a refused stream shows nothing, even when a place frees before its end", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "x", done: false });
    const late = { ...base, streamId: "late", from: "agent-x" };
    assert.equal(t.chunk({ ...late, text: "Turn the light ", done: false }).ok, false);
    t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "", done: true });
    // Its first words went with the refused chunk: what is left is not the sentence.
    t.chunk({ ...late, text: "off now.", done: false });
    assert.deepEqual(t.chunk({ ...late, text: "", done: true }), { ok: true, out: undefined });
  });

  it("a stream that failed (done, aborted) gives no output", () => {
    const t = new Transcriptions("me");
    t.chunk({ ...base, streamId: "a", from: "agent-x", text: "Hello th", done: false });
    assert.deepEqual(
      t.chunk({ ...base, streamId: "a", from: "agent-x", text: "", done: true, aborted: true }),
      {
        ok: true,
        out: undefined,
      },
    );
  });

  it("failed streams free their places: MAX_OPEN_STREAMS failures refuse nothing later", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++) {
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "x", done: false });
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "", done: true, aborted: true });
    }
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-x", text: "Hi.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
    });
  });
});

describe("lk.transcription: streams whose senders left", () => {
  const base = { topic: "lk.transcription", attributes: {} as Record<string, string> };
  const me = "02:00:00:00:00:01";
  /** Leaves at `at` and returns how many streams are released once the grace has passed. */
  const leave = (t: Transcriptions, identity: string, at = 0) => {
    t.participantLeft(identity, at);
    return t.tick(at + SENDER_LEFT_GRACE_MS);
  };

  it("a departed agent's open streams are released, their places freed and their rest ignored", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "Half a ", done: false });
    assert.equal(leave(t, "agent-x"), MAX_OPEN_STREAMS);
    t.agentJoined("agent-y");
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-y", text: "Hi.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
    });
    // A chunk of a released stream that was still under way (or its SDK's abort) shows nothing.
    assert.deepEqual(t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "sentence.", done: true }), {
      ok: true,
      out: undefined,
    });
  });

  it("the release waits SENDER_LEFT_GRACE_MS after the leave", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "s", from: "agent-x", text: "Half a ", done: false });
    assert.equal(t.nextDeadline(), undefined);
    t.participantLeft("agent-x", 1000);
    assert.equal(t.nextDeadline(), 1000 + SENDER_LEFT_GRACE_MS);
    assert.equal(t.tick(1000 + SENDER_LEFT_GRACE_MS - 1), 0);
    assert.equal(t.tick(1000 + SENDER_LEFT_GRACE_MS), 1);
    assert.equal(t.nextDeadline(), undefined);
    assert.equal(t.tick(1000 + 10 * SENDER_LEFT_GRACE_MS), 0);
  });

  it("a stream whose end comes just after its sender's leave is shown, and not released", () => {
    // The agent ends its goodbye and leaves at once: the leave (signalling) can reach the
    // gateway before the stream's end (data channel).
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "Goodbye, ", done: false });
    t.participantLeft("agent-x", 0);
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS - 1), 0);
    t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "see ", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "you.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Goodbye, see you." },
    });
    assert.equal(t.nextDeadline(), undefined);
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), 0);
  });

  it("a stream that fails within the grace is dropped as failed, not released", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "s", from: "agent-x", text: "Half a ", done: false });
    t.participantLeft("agent-x", 0);
    const failed = { ...base, streamId: "s", from: "agent-x", text: "", done: true, aborted: true };
    assert.deepEqual(t.chunk(failed), { ok: true, out: undefined });
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), 0);
  });

  it("a new stream that finds every place held takes a departed sender's at once, released", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: me, text: "words", done: false });
    t.participantLeft("agent-x", 0);
    t.agentJoined("agent-y");
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-y", text: "Hi.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
      released: true,
    });
    // The one taken is not released again; the rest are, at the grace's end.
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), MAX_OPEN_STREAMS - 1);
    // Places held by senders still in the room are not taken.
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `y${i}`, from: "agent-y", text: "x", done: false });
    assert.deepEqual(t.chunk({ ...base, streamId: "more", from: "agent-y", text: "x", done: false }), {
      ok: false,
      reason: "too_many_streams",
    });
  });

  it("the user's words sent on the device's behalf go with the agents in the room at their start", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-1");
    t.chunk({ ...base, streamId: "alone", from: me, text: "turn on", done: false });
    t.agentJoined("agent-2");
    t.chunk({ ...base, streamId: "both", from: me, text: "turn off", done: false });
    // agent-1 alone could have sent the first; either could have sent the second.
    assert.equal(leave(t, "agent-1"), 1);
    assert.equal(leave(t, "agent-2"), 1);
  });

  it("a stream on the device's behalf with no agent known at its start goes when no agent is left", () => {
    const t = new Transcriptions(me);
    t.chunk({ ...base, streamId: "s", from: me, text: "turn on", done: false });
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    assert.equal(leave(t, "agent-1"), 0);
    assert.equal(leave(t, "agent-2"), 1);
  });

  it("another sender's streams are kept, and end as usual", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    t.chunk({ ...base, streamId: "a2", from: "agent-2", text: "Hello ", done: false });
    assert.equal(leave(t, "agent-1"), 0);
    assert.deepEqual(t.chunk({ ...base, streamId: "a2", from: "agent-2", text: "there.", done: true }), {
      ok: true,
      out: { kind: "sentence", text: "Hello there." },
    });
  });
});
