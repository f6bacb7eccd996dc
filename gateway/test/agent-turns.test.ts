/**
 * Turn framing of the deployed agent's speech (turns.ts, docs/agent-data-channel.md "Turn
 * framing"): which signals start and end a device's `tts` turn, and the silences that end
 * one whose signal was lost. Pure code, time injected.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  END_GRACE_MS,
  END_QUIET_MS,
  FALLBACK_SILENCE_MS,
  LATE_SIGNAL_MS,
  SIGNALLED_SILENCE_MS,
  Turns,
} from "../src/agent/livekit/agent-protocol/turns.ts";

describe("turn framing", () => {
  it("speech_created starts a turn, with its text", () => {
    const t = new Turns();
    assert.deepEqual(t.speechCreated("hi", 0), [{ kind: "start", text: "hi" }]);
  });

  it("speech_created and a speaking state (message and attribute) frame one turn once", () => {
    const t = new Turns();
    const all = [
      ...t.speechCreated("", 0),
      ...t.agentState("attribute", "speaking", 10),
      ...t.agentState("message", "speaking", 20),
      ...t.audio(true, 30).actions,
    ];
    assert.deepEqual(all, [{ kind: "start", text: undefined }]);
  });

  it("leaving speaking ends the turn once the audio has gone quiet", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 100);
    assert.deepEqual(t.agentState("attribute", "listening", 110), []);
    assert.equal(t.audio(true, 150).forward, true, "the tail still plays");
    assert.deepEqual(t.tick(150 + END_QUIET_MS), [{ kind: "end", by: "signal" }]);
  });

  it("the end comes END_GRACE_MS after the signal even if audio goes on", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.agentState("message", "listening", 100);
    let ended = false;
    for (let now = 100; now <= 100 + END_GRACE_MS; now += 10) {
      if (t.audio(true, now).actions.length > 0) ended = true;
    }
    assert.ok(ended);
  });

  it("an agent_state_changed to thinking ends the turn too (A's debounce may drop speaking→listening)", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    // Quiet already for longer than END_QUIET_MS: the turn ends with the signal.
    assert.deepEqual(t.agentState("message", "thinking", 500), [{ kind: "end", by: "signal" }]);
  });

  it("music_playback_stopped ends the turn", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.musicStopped(10);
    assert.deepEqual(t.tick(10 + END_QUIET_MS), [{ kind: "end", by: "signal" }]);
  });

  it("a signal-less agent gets the silence guess: voice starts, 400 ms of silence ends", () => {
    const t = new Turns();
    assert.deepEqual(t.audio(true, 0).actions, [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.audio(false, FALLBACK_SILENCE_MS - 1).actions, []);
    assert.deepEqual(t.audio(false, FALLBACK_SILENCE_MS).actions, [{ kind: "end", by: "silence" }]);
  });

  it("an agent with signals whose end signal is lost ends after the longer silence", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.audio(true, 100);
    assert.deepEqual(t.tick(100 + FALLBACK_SILENCE_MS), []);
    assert.deepEqual(t.tick(100 + SIGNALLED_SILENCE_MS), [{ kind: "end", by: "silence" }]);
  });

  it("after an abort, audio in flight is dropped and starts nothing", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.audio(true, 10);
    t.abort(20);
    for (let now = 30; now < 5000; now += 10) {
      const r = t.audio(true, now);
      assert.equal(r.forward, false);
      assert.deepEqual(r.actions, []);
    }
  });

  it("after an abort, a repeated speaking state does not reopen the gate", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.abort(10);
    assert.deepEqual(t.agentState("attribute", "speaking", 20), []);
    assert.equal(t.gated, true);
  });

  it("after an abort, the agent's next turn (speech_created or a new speaking) plays", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.abort(10);
    t.agentState("attribute", "listening", 20);
    assert.deepEqual(t.agentState("attribute", "speaking", 30), [{ kind: "start", text: undefined }]);
    assert.equal(t.audio(true, 40).forward, true);
    const u = new Turns();
    u.speechCreated("", 0);
    u.abort(10);
    assert.deepEqual(u.speechCreated("", 20), [{ kind: "start", text: undefined }]);
  });

  it("a signal-less agent's audio plays again once it has been quiet after the abort", () => {
    const t = new Turns();
    t.audio(true, 0);
    t.abort(10);
    assert.equal(t.audio(true, 50).forward, false);
    t.audio(false, 50 + FALLBACK_SILENCE_MS);
    assert.deepEqual(t.audio(true, 60 + FALLBACK_SILENCE_MS).actions, [{ kind: "start", text: undefined }]);
  });

  it("silence outside a turn is neither forwarded nor a turn", () => {
    const t = new Turns();
    assert.deepEqual(t.audio(false, 0), { forward: false, actions: [] });
  });
});

describe("turn framing, late signals", () => {
  it("a speech_created that arrives after the state moved on, with no voice, ends after the long silence", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 10);
    t.agentState("attribute", "listening", 20);
    t.tick(20 + END_GRACE_MS);
    assert.deepEqual(t.speechCreated("", 1500), [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.tick(1500 + SIGNALLED_SILENCE_MS - 1), []);
    assert.deepEqual(t.tick(1500 + SIGNALLED_SILENCE_MS), [{ kind: "end", by: "silence" }]);
  });

  it("the long silence still ends it when the agent's message state is stale (its debounce)", () => {
    const t = new Turns();
    // A and B send their state as a message too; a change within 350 ms of the last one
    // sent is dropped, so after a short reply the message state is left at speaking.
    t.agentState("message", "speaking", 0);
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 10);
    t.agentState("attribute", "listening", 200);
    t.tick(200 + END_GRACE_MS);
    assert.deepEqual(t.speechCreated("", 1500), [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.tick(1500 + SIGNALLED_SILENCE_MS), [{ kind: "end", by: "silence" }]);
  });

  it("a repeated lk.agent.state value (another attribute changed) says nothing", () => {
    const t = new Turns();
    t.agentState("attribute", "thinking", 0);
    // speech_created overtakes the attribute's change into speaking.
    assert.deepEqual(t.speechCreated("hi", 100), [{ kind: "start", text: "hi" }]);
    // The transports pass the full attribute set on any change: the state is repeated.
    assert.deepEqual(t.agentState("attribute", "thinking", 500), []);
    assert.deepEqual(t.agentState("attribute", "speaking", 600), [], "one turn, framed once");
    assert.equal(t.speaking, true);
  });

  it("a speech_created before any voice waits while the agent still says speaking", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.speechCreated("", 0);
    assert.deepEqual(t.tick(10_000), []);
  });
});

describe("turn framing, the interrupted reply's signals after an abort", () => {
  // One change into speaking of the deployed agent reaches the gateway as up to three
  // signals on two paths: the framework's lk.agent.state attribute (signalling), and
  // speech_created plus agent_state_changed (A only, unless within its 350 ms debounce) on
  // the reliable data channel. Each path keeps its own order, not the other's; the device's
  // abort comes on a third (MQTT).

  it("a speech_created of the interrupted reply, late on its path, neither reopens the gate nor starts a turn", () => {
    const t = new Turns();
    t.agentState("attribute", "thinking", 0);
    assert.deepEqual(t.agentState("attribute", "speaking", 100), [{ kind: "start", text: undefined }]);
    for (let now = 110; now <= 600; now += 10) assert.equal(t.audio(true, now).forward, true);
    t.abort(700);
    assert.deepEqual(t.speechCreated("", 750), [{ kind: "late" }]);
    assert.deepEqual(t.agentState("message", "speaking", 750), [{ kind: "late" }]);
    assert.equal(t.gated, true);
    assert.equal(t.speaking, false);
    assert.deepEqual(t.audio(true, 760), { forward: false, actions: [] }, "the rest of the reply stays out");
    // The agent, interrupted, listens; its next reply is a new turn.
    t.agentState("attribute", "listening", 800);
    t.agentState("attribute", "thinking", 4000);
    assert.deepEqual(t.agentState("attribute", "speaking", 4500), [{ kind: "start", text: undefined }]);
    assert.deepEqual(t.speechCreated("", 4510), []);
    assert.equal(t.audio(true, 4520).forward, true);
  });

  it("a turn that the voice opened: every signal of it that comes after the abort is late", () => {
    const t = new Turns();
    t.agentState("attribute", "thinking", 0);
    t.agentState("message", "thinking", 0);
    assert.deepEqual(t.audio(true, 100).actions, [{ kind: "start", text: undefined }]);
    t.abort(600);
    assert.deepEqual(t.agentState("attribute", "speaking", 650), [{ kind: "late" }]);
    assert.deepEqual(t.speechCreated("", 660), [{ kind: "late" }]);
    assert.deepEqual(t.agentState("message", "speaking", 660), [{ kind: "late" }]);
    assert.equal(t.gated, true);
    // A new reply: speech_created now opens the gate whichever path comes first.
    t.agentState("message", "listening", 700);
    assert.deepEqual(t.speechCreated("", 5000), [{ kind: "start", text: undefined }]);
  });

  it("signals that had all come before the abort leave nothing owed: the next speaking is a new turn", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.speechCreated("", 0);
    t.agentState("message", "speaking", 0);
    t.abort(500);
    t.agentState("message", "listening", 600);
    assert.deepEqual(t.agentState("message", "speaking", 1500), [{ kind: "start", text: undefined }]);
  });

  it("a signal that never comes (A's debounce) is not waited for: a later change on its path clears it", () => {
    const t = new Turns();
    // The message path's change into speaking was debounced away; only the attribute and
    // speech_created said so. Then a reply ended and its voice went on past the end grace,
    // so the voice alone opened the turn that the device aborted: nothing of it is coming.
    t.agentState("attribute", "speaking", 0);
    t.speechCreated("", 0);
    for (let now = 10; now <= 500; now += 10) t.audio(true, now);
    t.agentState("attribute", "listening", 500);
    t.agentState("message", "listening", 500);
    assert.deepEqual(t.audio(true, 500 + END_GRACE_MS).actions, [{ kind: "end", by: "signal" }]);
    assert.deepEqual(t.audio(true, 510 + END_GRACE_MS).actions, [{ kind: "start", text: undefined }]);
    t.abort(1600);
    // The next reply: its changes on both paths show the paths have moved on.
    t.agentState("attribute", "thinking", 1700);
    t.agentState("message", "thinking", 1700);
    assert.deepEqual(t.agentState("attribute", "speaking", 1800), [{ kind: "start", text: undefined }]);
  });

  it("a signal owed for longer than LATE_SIGNAL_MS is a new turn's", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 10);
    t.abort(500);
    assert.deepEqual(t.speechCreated("", 500 + LATE_SIGNAL_MS), [{ kind: "start", text: undefined }]);
  });

  it("a window set at construction holds an owed signal late for that long, and no longer", () => {
    const t = new Turns(15_000);
    t.agentState("attribute", "speaking", 0);
    t.audio(true, 10);
    t.abort(500);
    assert.deepEqual(t.speechCreated("", 500 + LATE_SIGNAL_MS), [{ kind: "late" }]);
    assert.deepEqual(t.agentState("message", "speaking", 500 + 15_000), [{ kind: "start", text: undefined }]);
  });

  it("a turn resumed before it ended owes the resumed change's signals", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.speechCreated("", 0);
    t.audio(true, 10);
    t.agentState("attribute", "listening", 100);
    assert.deepEqual(t.agentState("attribute", "speaking", 150), [], "the same reply goes on");
    t.audio(true, 160);
    t.abort(700);
    assert.deepEqual(t.speechCreated("", 750), [{ kind: "late" }], "the resumed change's speech_created");
    assert.equal(t.gated, true);
  });
});

describe("turn framing, the agent leaving", () => {
  it("its open turn ends at once, voice or none", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    assert.deepEqual(t.agentLeft(10), [{ kind: "end", by: "agent_left" }]);
    assert.equal(t.speaking, false);
  });

  it("its stored speaking is forgotten: the next agent's turn starts on its own signal", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.agentLeft(10);
    assert.deepEqual(t.agentState("attribute", "speaking", 20), [{ kind: "start", text: undefined }]);
  });

  it("an abort after it left owes nothing of its turn: the next agent's first signal plays", () => {
    const t = new Turns();
    t.agentState("attribute", "speaking", 0);
    t.agentLeft(10);
    t.abort(20);
    assert.deepEqual(t.speechCreated("", 30), [{ kind: "start", text: undefined }]);
  });

  it("its voice still in flight starts no turn", () => {
    const t = new Turns();
    t.speechCreated("", 0);
    t.audio(true, 10);
    t.agentLeft(20);
    assert.deepEqual(t.audio(true, 30), { forward: false, actions: [] });
  });
});
