/**
 * Nothing may grow per session here as it did in the replaced gateway (a worker pool per
 * session): a bounded downstream queue, full release on close, and a heap that stays flat
 * across thousands of sessions.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { AgentFactory, AgentSink } from "../src/agent/agent-bridge.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { DOWN_FRAME_BYTES } from "../src/protocol/audio-format.ts";
import { MAX_QUEUED_FRAMES } from "../src/session/downstream.ts";
import { MINIMAL_HELLO, replyTarget, startCore } from "./support/core.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("downstream queue", () => {
  let stack: Stack;
  let sinks: AgentSink[];
  before(async () => {
    stack = await startStack();
    sinks = [];
    // An agent that answers a listen with 3 s of audio in one burst (a misbehaving agent).
    const flooding: AgentFactory = (_info, sink) => {
      sinks.push(sink);
      return {
        pushAudio: () => {},
        onDeviceEvent: (e) => {
          if (e.kind === "listen_start") {
            sink.speechStart();
            sink.audio(Buffer.alloc(DOWN_FRAME_BYTES * 50, 1));
            sink.speechEnd();
          }
        },
        close: async () => {},
      };
    };
    await stack.startGateway({}, flooding);
  });
  after(async () => {
    await stack.stop();
  });

  it(`holds at most ${MAX_QUEUED_FRAMES} frames (28,800 bytes of PCM), dropping the oldest and counting them`, async () => {
    const gw = stack.gateways[0];
    assert.ok(gw);
    const device = await stack.device();
    await device.hello();
    device.sendFrame(); // prove the address first
    const before = gw.metrics.dropCount("down_queue_full");
    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop");
    device.listen("auto");
    await stop;
    const dropped = gw.metrics.dropCount("down_queue_full") - before;
    // 50 frames offered at once: at most 10 queued + 3 at the encoder get through.
    assert.ok(dropped >= 50 - MAX_QUEUED_FRAMES - 3, `dropped ${dropped}`);
    assert.equal(device.stats.framesReceived, 50 - dropped);
    assert.deepEqual(device.stats.errors, {});
    await device.close();
  });
});

describe("closing a session releases everything", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    await stack.startGateway();
  });
  after(async () => {
    await stack.stop();
  });

  it("the connection id, both codec streams and the client entry are gone after goodbye", async () => {
    const gw = stack.gateways[0];
    assert.ok(gw);
    const device = await stack.device();
    const reply = await device.hello();
    const connectionId = reply.nonce.readUInt32BE(4);
    assert.equal(gw.pool.openStreams, 2);
    await device.goodbye();
    await eventually(() => gw.gateway.sessions.size === 0, 5000, "session closed");
    assert.equal(gw.gateway.sessions.byConnection(connectionId), undefined);
    assert.equal(gw.gateway.sessions.connectionIds(), 0);
    assert.equal(gw.pool.openStreams, 0);
    await device.close();
  });

  it("a device whose MQTT connection drops loses its session at once", async () => {
    const gw = stack.gateways[0];
    assert.ok(gw);
    const device = await stack.device();
    await device.hello();
    assert.equal(gw.gateway.sessions.size, 1);
    await device.vanish();
    await eventually(() => gw.gateway.sessions.size === 0, 5000, "session closed on disconnect");
    assert.equal(gw.metrics.closes().mqtt_disconnected, 1);
  });
});

describe("heap across 5,000 session open/close cycles", () => {
  it("stays flat (the core, real Opus workers, no broker in the loop)", async () => {
    const pool = await OpusPool.start({ size: 2, complexity: 5, bitrate: 24000 });
    const lastReply = new Map<string, string>();
    const { gateway, metrics } = startCore({
      pool,
      idleTimeoutMs: 60_000,
      agentFactory: (await import("../src/agent/echo.ts")).createEchoAgent,
      publish: (topic, payload) => {
        const client = replyTarget(topic);
        if (client !== undefined) lastReply.set(client, payload);
      },
    });
    const hello = MINIMAL_HELLO;
    const cycle = (i: number) => {
      const clientId = `GID_test@@@02_00_00_${((i >> 8) & 0xff).toString(16).padStart(2, "0")}_${(i & 0xff).toString(16).padStart(2, "0")}_01@@@u${i}`;
      gateway.handleBrokerMessage(`ingest/${clientId}`, hello);
      const reply = JSON.parse(lastReply.get(clientId) ?? "{}") as { session_id?: string };
      gateway.handleBrokerMessage(
        `ingest/${clientId}`,
        Buffer.from(JSON.stringify({ type: "goodbye", session_id: reply.session_id })),
      );
      lastReply.delete(clientId);
    };
    const settle = async () => {
      await eventually(() => pool.openStreams === 0 && gateway.sessions.size === 0, 10_000, "all closed");
      // Let the workers process the closes, then collect.
      const probe = pool.openDecoder(16000);
      await pool.decode(probe, Buffer.from([0xf8, 0xff, 0xfe])).catch(() => {});
      pool.close(probe);
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      return process.memoryUsage().heapUsed;
    };
    for (let i = 0; i < 1000; i++) cycle(i);
    const warm = await settle();
    for (let i = 0; i < 5000; i++) {
      cycle(1000 + i);
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    const after = await settle();
    const growth = after - warm;
    assert.equal(metrics.closes().device_goodbye, 6000);
    assert.ok(growth < 2 * 1024 * 1024, `heap grew ${(growth / 1024).toFixed(0)} KiB over 5,000 sessions`);
    metrics.stop();
    await pool.shutdown();
  });
});
