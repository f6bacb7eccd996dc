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
  STALE_STREAM_MS,
  Transcriptions,
} from "../src/agent/livekit/agent-protocol/transcription.ts";

/** What every chunk here shares: the topic, no attributes. */
const base = { topic: "lk.transcription", attributes: {} as Record<string, string> };
/** The device's identity. */
const me = "02:00:00:00:00:01";

describe("lk.transcription", () => {
  it("a final user segment (sent as the device) is stt", () => {
    const t = new Transcriptions("02:00:00:00:00:01");
    const from = "02:00:00:00:00:01";
    const attributes = { "lk.transcription_final": "true" };
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "turn on", done: false }, 0), {
      ok: true,
      out: undefined,
    });
    t.chunk({ ...base, attributes, streamId: "s", from, text: " the light", done: false }, 0);
    assert.deepEqual(t.chunk({ ...base, attributes, streamId: "s", from, text: "", done: true }, 0), {
      ok: true,
      out: { kind: "stt", text: "turn on the light" },
    });
  });

  it("an interim user segment is not sent", () => {
    const t = new Transcriptions("me");
    const attributes = { "lk.transcription_final": "false" };
    assert.deepEqual(
      t.chunk({ ...base, attributes, streamId: "s", from: "me", text: "tur", done: true }, 0),
      {
        ok: true,
        out: undefined,
      },
    );
  });

  it("the agent's segment is a tts sentence once complete", () => {
    const t = new Transcriptions("me");
    t.chunk({ ...base, streamId: "a", from: "agent-x", text: "Hello ", done: false }, 0);
    assert.deepEqual(t.chunk({ ...base, streamId: "a", from: "agent-x", text: "there.", done: true }, 0), {
      ok: true,
      out: { kind: "sentence", text: "Hello there." },
    });
  });

  it("refuses more than MAX_OPEN_STREAMS open streams", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "a", text: "x", done: false }, 0);
    assert.deepEqual(t.chunk({ ...base, streamId: "one-more", from: "a", text: "x", done: false }, 0), {
      ok: false,
      reason: "too_many_streams",
    });
  });

  it("a refused stream shows nothing, even when a place frees before its end", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "x", done: false }, 0);
    const late = { ...base, streamId: "late", from: "agent-x" };
    assert.equal(t.chunk({ ...late, text: "Turn the light ", done: false }, 0).ok, false);
    t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "", done: true }, 0);
    // Its first words went with the refused chunk: what is left is not the sentence.
    t.chunk({ ...late, text: "off now.", done: false }, 0);
    assert.deepEqual(t.chunk({ ...late, text: "", done: true }, 0), { ok: true, out: undefined });
  });

  it("a stream that failed (done, aborted) gives no output", () => {
    const t = new Transcriptions("me");
    t.chunk({ ...base, streamId: "a", from: "agent-x", text: "Hello th", done: false }, 0);
    assert.deepEqual(
      t.chunk({ ...base, streamId: "a", from: "agent-x", text: "", done: true, aborted: true }, 0),
      {
        ok: true,
        out: undefined,
      },
    );
  });

  it("failed streams free their places: MAX_OPEN_STREAMS failures refuse nothing later", () => {
    const t = new Transcriptions("me");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++) {
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "x", done: false }, 0);
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "", done: true, aborted: true }, 0);
    }
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-x", text: "Hi.", done: true }, 0), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
    });
  });
});

describe("lk.transcription: streams whose senders left", () => {
  /** Leaves at `at` and returns how many streams are released once the grace has passed. */
  const leave = (t: Transcriptions, identity: string, at = 0) => {
    t.participantLeft(identity, at);
    return t.tick(at + SENDER_LEFT_GRACE_MS);
  };

  it("a departed agent's open streams are released, their places freed and their rest ignored", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "Half a ", done: false }, 0);
    assert.equal(leave(t, "agent-x"), MAX_OPEN_STREAMS);
    t.agentJoined("agent-y");
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-y", text: "Hi.", done: true }, 0), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
    });
    // A chunk of a released stream that was still under way (or its SDK's abort) shows nothing.
    assert.deepEqual(
      t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "sentence.", done: true }, 0),
      {
        ok: true,
        out: undefined,
      },
    );
  });

  it("the release waits SENDER_LEFT_GRACE_MS after the leave", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "s", from: "agent-x", text: "Half a ", done: false }, 0);
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
    t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "Goodbye, ", done: false }, 0);
    t.participantLeft("agent-x", 0);
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS - 1), 0);
    const late = SENDER_LEFT_GRACE_MS - 1;
    t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "see ", done: false }, late);
    assert.deepEqual(t.chunk({ ...base, streamId: "bye", from: "agent-x", text: "you.", done: true }, late), {
      ok: true,
      out: { kind: "sentence", text: "Goodbye, see you." },
    });
    assert.equal(t.nextDeadline(), undefined);
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), 0);
  });

  it("a stream that fails within the grace is dropped as failed, not released", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "s", from: "agent-x", text: "Half a ", done: false }, 0);
    t.participantLeft("agent-x", 0);
    const failed = { ...base, streamId: "s", from: "agent-x", text: "", done: true, aborted: true };
    assert.deepEqual(t.chunk(failed, 0), { ok: true, out: undefined });
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), 0);
  });

  it("a new stream that finds every place held takes a departed sender's at once, released", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: me, text: "words", done: false }, 0);
    t.participantLeft("agent-x", 0);
    t.agentJoined("agent-y");
    assert.deepEqual(t.chunk({ ...base, streamId: "next", from: "agent-y", text: "Hi.", done: true }, 0), {
      ok: true,
      out: { kind: "sentence", text: "Hi." },
      released: "sender_left",
    });
    // The one taken is not released again; the rest are, at the grace's end.
    assert.equal(t.tick(SENDER_LEFT_GRACE_MS), MAX_OPEN_STREAMS - 1);
    // Places held by senders still in the room are not taken.
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `y${i}`, from: "agent-y", text: "x", done: false }, 0);
    assert.deepEqual(t.chunk({ ...base, streamId: "more", from: "agent-y", text: "x", done: false }, 0), {
      ok: false,
      reason: "too_many_streams",
    });
  });

  it("the user's words sent on the device's behalf go with the agents in the room at their start", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-1");
    t.chunk({ ...base, streamId: "alone", from: me, text: "turn on", done: false }, 0);
    t.agentJoined("agent-2");
    t.chunk({ ...base, streamId: "both", from: me, text: "turn off", done: false }, 0);
    // agent-1 alone could have sent the first; either could have sent the second.
    assert.equal(leave(t, "agent-1"), 1);
    assert.equal(leave(t, "agent-2"), 1);
  });

  it("a stream on the device's behalf with no agent known at its start goes when no agent is left", () => {
    const t = new Transcriptions(me);
    t.chunk({ ...base, streamId: "s", from: me, text: "turn on", done: false }, 0);
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    assert.equal(leave(t, "agent-1"), 0);
    assert.equal(leave(t, "agent-2"), 1);
  });

  it("another sender's streams are kept, and end as usual", () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-1");
    t.agentJoined("agent-2");
    t.chunk({ ...base, streamId: "a2", from: "agent-2", text: "Hello ", done: false }, 0);
    assert.equal(leave(t, "agent-1"), 0);
    assert.deepEqual(t.chunk({ ...base, streamId: "a2", from: "agent-2", text: "there.", done: true }, 0), {
      ok: true,
      out: { kind: "sentence", text: "Hello there." },
    });
  });
});

describe("lk.transcription: streams left open by a sender that stays", () => {
  /** MAX_OPEN_STREAMS streams agent-x opens (s0 at 0, s1 at 1, ...) and never ends; it stays. */
  const abandoned = () => {
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "Half a ", done: false }, i);
    return t;
  };

  it("a new stream STALE_STREAM_MS after the quietest one's last chunk takes its place, released as stale", () => {
    const t = abandoned();
    assert.deepEqual(
      t.chunk({ ...base, streamId: "next", from: "agent-x", text: "Hi.", done: true }, STALE_STREAM_MS),
      {
        ok: true,
        out: { kind: "sentence", text: "Hi." },
        released: "stale",
      },
    );
    // That stream ended: its place is free again, and the user's next words take it.
    const attributes = { "lk.transcription_final": "true" };
    const said = { ...base, attributes, streamId: "u1", from: me, text: "turn on", done: false };
    assert.deepEqual(t.chunk(said, STALE_STREAM_MS + 1), { ok: true, out: undefined });
    // Every place held again: the next new stream takes the next stale one's (s1, quiet since 1).
    const reply = { ...base, streamId: "n2", from: "agent-x", text: "On it", done: false };
    assert.deepEqual(t.chunk(reply, STALE_STREAM_MS + 1), { ok: true, out: undefined, released: "stale" });
    assert.deepEqual(t.chunk({ ...said, text: " the light", done: true }, STALE_STREAM_MS + 2), {
      ok: true,
      out: { kind: "stt", text: "turn on the light" },
    });
  });

  it("the place taken is the least recently active stream's, not the first opened", () => {
    const t = abandoned();
    // s0, opened first, is still being written; s1 is the quietest.
    t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "long ", done: false }, 100);
    assert.equal(
      t.chunk({ ...base, streamId: "new", from: "agent-x", text: "x", done: false }, 1 + STALE_STREAM_MS).ok,
      true,
    );
    // s0 keeps its place and its text: it is shown whole when it ends.
    assert.deepEqual(
      t.chunk({ ...base, streamId: "s0", from: "agent-x", text: "story.", done: true }, 1 + STALE_STREAM_MS),
      {
        ok: true,
        out: { kind: "sentence", text: "Half a long story." },
      },
    );
  });

  it("a stream with a chunk within STALE_STREAM_MS is not displaced: a new stream is refused as before", () => {
    const t = abandoned();
    const more = { ...base, streamId: "more", from: "agent-x", text: "x", done: false };
    // s0's last chunk was at 0: at STALE_STREAM_MS - 1 none is stale.
    assert.deepEqual(t.chunk(more, STALE_STREAM_MS - 1), { ok: false, reason: "too_many_streams" });
    // Each written to again later: none is stale STALE_STREAM_MS - 1 after that.
    for (let i = 0; i < MAX_OPEN_STREAMS; i++)
      t.chunk({ ...base, streamId: `s${i}`, from: "agent-x", text: "more ", done: false }, 50_000);
    const again = { ...more, streamId: "again" };
    assert.deepEqual(t.chunk(again, 50_000 + STALE_STREAM_MS - 1), { ok: false, reason: "too_many_streams" });
  });

  it("a released stale stream's later chunks and end show nothing: its text is not whole", () => {
    const t = abandoned();
    t.chunk({ ...base, streamId: "next", from: "agent-x", text: "Hi.", done: true }, STALE_STREAM_MS);
    const rest = { ...base, streamId: "s0", from: "agent-x" };
    assert.deepEqual(t.chunk({ ...rest, text: "sentence", done: false }, STALE_STREAM_MS + 1), {
      ok: true,
      out: undefined,
    });
    assert.deepEqual(t.chunk({ ...rest, text: ".", done: true }, STALE_STREAM_MS + 2), {
      ok: true,
      out: undefined,
    });
    // Nor did its rest take a place: MAX_OPEN_STREAMS - 1 are held, one is free.
    const n1 = { ...base, streamId: "n1", from: "agent-x", text: "x", done: false };
    assert.deepEqual(t.chunk(n1, STALE_STREAM_MS + 3), { ok: true, out: undefined });
  });

  it("a stream quiet past STALE_STREAM_MS keeps its place while none is wanted, and ends shown whole", () => {
    // A pause no writer of LiveKit Agents leaves is still not a reason to lose the text when
    // no new stream needs the place (stale streams are released only to make room).
    const t = new Transcriptions(me);
    t.agentJoined("agent-x");
    t.chunk({ ...base, streamId: "slow", from: "agent-x", text: "Well, ", done: false }, 0);
    assert.equal(t.tick(10 * STALE_STREAM_MS), 0);
    assert.equal(t.nextDeadline(), undefined);
    assert.deepEqual(
      t.chunk({ ...base, streamId: "slow", from: "agent-x", text: "yes.", done: true }, 10 * STALE_STREAM_MS),
      {
        ok: true,
        out: { kind: "sentence", text: "Well, yes." },
      },
    );
  });

  it("a departed sender's stream is taken before a stale one", () => {
    const t = abandoned();
    t.agentJoined("agent-y");
    // s0..s14 stay agent-x's (stale by the time below); the last place is agent-y's, which leaves.
    t.chunk({ ...base, streamId: `s${MAX_OPEN_STREAMS - 1}`, from: "agent-x", text: "", done: true }, 20);
    t.chunk({ ...base, streamId: "y", from: "agent-y", text: "Bye ", done: false }, 2 * STALE_STREAM_MS);
    t.participantLeft("agent-y", 2 * STALE_STREAM_MS);
    const next = { ...base, streamId: "next", from: "agent-x", text: "x", done: false };
    assert.deepEqual(t.chunk(next, 2 * STALE_STREAM_MS), {
      ok: true,
      out: undefined,
      released: "sender_left",
    });
    assert.equal(t.tick(2 * STALE_STREAM_MS + SENDER_LEFT_GRACE_MS), 0, "agent-y's stream is gone already");
  });
});
