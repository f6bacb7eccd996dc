/**
 * A session's idle timeout and maximum duration, on an injected clock (the gateway core
 * alone, real Opus workers): closed with the right reason and a goodbye, at the right time.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AgentFactory, AgentSink } from "../src/agent/agent-bridge.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { MINIMAL_HELLO, nullAgent, replyTarget, startCore } from "./support/core.ts";
import { ManualTimers } from "./support/manual-timers.ts";

const CLIENT = "GID_test@@@02_00_00_00_00_07@@@u7";

describe("session timers on an injected clock", () => {
  let pool: OpusPool;
  before(async () => {
    pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  });
  after(async () => {
    await pool.shutdown();
  });

  /** A core with one session of CLIENT; idle 1 s, at most 5 s. */
  const oneSession = (agentFactory: AgentFactory = nullAgent) => {
    const timers = new ManualTimers();
    const replies: { type?: string; session_id?: string; reason?: string; state?: string }[] = [];
    const core = startCore({
      pool,
      idleTimeoutMs: 1000,
      maxSessionMs: 5000,
      startTimer: timers.start,
      agentFactory,
      publish: (topic, payload) => {
        if (replyTarget(topic) === CLIENT) replies.push(JSON.parse(payload));
      },
    });
    core.gateway.handleBrokerMessage(`ingest/${CLIENT}`, MINIMAL_HELLO);
    const sessionId = replies[0]?.session_id ?? "";
    const listen = () =>
      core.gateway.handleBrokerMessage(
        `ingest/${CLIENT}`,
        Buffer.from(JSON.stringify({ session_id: sessionId, type: "listen", state: "start", mode: "auto" })),
      );
    const goodbye = () => replies.find((r) => r.type === "goodbye");
    const stop = async () => {
      await core.gateway.drain();
      core.metrics.stop();
    };
    const tts = () => replies.filter((r) => r.type === "tts").map((r) => r.state);
    return { ...core, timers, sessionId, listen, goodbye, tts, stop };
  };

  it("an idle session closes at the idle timeout, not before, with a goodbye", async () => {
    const s = oneSession();
    try {
      s.timers.advance(999);
      assert.equal(s.gateway.sessions.size, 1);
      s.timers.advance(1);
      assert.equal(s.gateway.sessions.size, 0);
      assert.equal(s.metrics.closes().inactivity_timeout, 1);
      assert.equal(s.goodbye()?.session_id, s.sessionId);
    } finally {
      await s.stop();
    }
  });

  it("a device message restarts the idle timeout", async () => {
    const s = oneSession();
    try {
      s.timers.advance(800);
      s.listen();
      s.timers.advance(800);
      assert.equal(s.gateway.sessions.size, 1);
      s.timers.advance(200);
      assert.equal(s.gateway.sessions.size, 0);
      assert.equal(s.metrics.closes().inactivity_timeout, 1);
    } finally {
      await s.stop();
    }
  });

  it("a session whose agent is speaking is not idle: the idle timeout counts from the turn's end", async () => {
    // Firmware outside realtime mode sends nothing while it plays (Speaking), so a reply
    // longer than the idle timeout (a story) must not be cut off by a goodbye.
    let agent: AgentSink | undefined;
    const s = oneSession((_info, sink) => {
      agent = sink;
      return nullAgent(_info, sink);
    });
    try {
      assert.ok(agent);
      agent.speechStart("once upon a time");
      s.timers.advance(2500);
      assert.equal(s.gateway.sessions.size, 1, "open through a turn longer than the idle timeout");
      s.timers.advance(500);
      agent.speechEnd();
      assert.deepEqual(s.tts(), ["start", "stop"]);
      s.timers.advance(999);
      assert.equal(s.gateway.sessions.size, 1);
      s.timers.advance(1);
      assert.equal(s.gateway.sessions.size, 0);
      assert.equal(s.metrics.closes().inactivity_timeout, 1);
    } finally {
      await s.stop();
    }
  });

  it("a busy session still closes at the maximum duration", async () => {
    const s = oneSession();
    try {
      for (let t = 0; t < 4900; t += 700) {
        s.timers.advance(700);
        s.listen();
      }
      assert.equal(s.gateway.sessions.size, 1);
      s.timers.advance(100);
      assert.equal(s.gateway.sessions.size, 0);
      assert.equal(s.metrics.closes().max_duration, 1);
      assert.equal(s.goodbye()?.session_id, s.sessionId);
    } finally {
      await s.stop();
    }
  });
});
