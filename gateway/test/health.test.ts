/**
 * Health per instance (issue 3): every gateway instance serves its own /health (JSON),
 * /metrics (Prometheus text), /livez and /readyz (503 while draining) on its health port.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AgentFactory } from "../src/agent/agent-bridge.ts";
import { createEchoAgent } from "../src/agent/echo.ts";
import type { RunningGateway } from "../src/app.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

async function get(g: RunningGateway, path: string): Promise<{ status: number; type: string; text: string }> {
  const r = await fetch(`http://127.0.0.1:${g.healthPort}${path}`);
  return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
}

async function health(g: RunningGateway): Promise<Record<string, unknown>> {
  const r = await get(g, "/health");
  assert.equal(r.status, 200);
  return JSON.parse(r.text) as Record<string, unknown>;
}

describe("health, metrics and readiness per instance", () => {
  let stack: Stack;
  let gateways: RunningGateway[];
  /** Resolves the agents' close(): holds a drain open while we look at /readyz. */
  let releaseAgents: () => void = () => {};
  const agentsClosed = new Promise<void>((resolve) => {
    releaseAgents = resolve;
  });
  let closing = 0;
  // The echo agent, whose close() waits for the test: a drain stays in progress until then.
  const slowClosing: AgentFactory = (info, sink) => {
    const echo = createEchoAgent(info, sink);
    return {
      pushAudio: (pcm, rate) => echo.pushAudio(pcm, rate),
      onDeviceEvent: (e) => echo.onDeviceEvent(e),
      close: async () => {
        closing++;
        await echo.close();
        await agentsClosed;
      },
    };
  };

  before(async () => {
    stack = await startStack();
    gateways = await stack.startGateways(2, {
      // Utilization is sampled each totals interval: often enough to see a short talk.
      overrides: { WORKER_COUNT: "1", TOTALS_INTERVAL_MS: "200" },
      agentFactory: () => slowClosing,
    });
  });
  after(async () => {
    releaseAgents();
    await stack.stop();
  });

  it("GET /health: instance id, uptime, sessions, workers, frames/s, drops, memory, event-loop lag", async () => {
    const device = await stack.device();
    const reply = await device.hello();
    const owner = gateways[Number(reply.sessionId.split("-")[0]) - 1] as RunningGateway;
    device.listen("realtime");
    device.talk(3000);
    device.publishRaw("{not json"); // one counted drop, on whichever instance the broker picks
    // Frames/s is a 1 s rate: wait until the owner reports the stream, and the codec time
    // of a sampling interval with it.
    let h = await health(owner);
    while ((h.framesPerSecond as { up: number }).up < 10 || !((h.inlineCodecUtilization as number) > 0)) {
      await device.waitForAudio(5);
      h = await health(owner);
    }
    device.stopTalking();
    assert.equal(h.instanceId, gateways.indexOf(owner) + 1);
    assert.equal(h.ready, true);
    assert.equal(h.draining, false);
    assert.equal(h.brokerConnected, true);
    assert.equal(typeof h.bootId, "string");
    assert.ok(Number.isInteger(h.uptimeSeconds) && (h.uptimeSeconds as number) >= 0);
    assert.equal(h.sessions, 1);
    assert.deepEqual(h.sessionsByState, { streaming: 1 });
    const workers = h.workers as { streams: number; restarts: number }[];
    assert.equal(workers.length, 1);
    assert.equal(h.inlineCodecStreams, 2, "the session's decoder and encoder, on the main thread");
    const inlineUtilization = h.inlineCodecUtilization as number;
    assert.ok(inlineUtilization > 0 && inlineUtilization < 1, `inlineCodecUtilization ${inlineUtilization}`);
    assert.equal(workers[0]?.streams, 0);
    assert.equal((workers[0] as { utilization?: number }).utilization, 0, "the worker coded nothing");
    const fps = h.framesPerSecond as { up: number; down: number };
    assert.ok(fps.up > 5 && fps.up < 30, `frames/s up ${fps.up} (one device at 16.7/s)`);
    const memory = h.memory as Record<string, number>;
    for (const k of ["rssBytes", "heapUsedBytes", "heapTotalBytes"]) assert.ok((memory[k] ?? 0) > 0, k);
    assert.equal(typeof h.eventLoopLagP99Ms, "number");
    assert.ok((h.eventLoopLagP99Ms as number) >= 0);
    assert.equal(typeof h.drops, "object");
    await eventually(
      () => gateways.some((g) => g.metrics.dropCount("mqtt_malformed_json") === 1),
      5000,
      "the drop",
    );
    const all = await Promise.all(gateways.map(health));
    assert.deepEqual(
      all.map((x) => x.instanceId),
      [1, 2],
    );
    assert.equal(
      all.reduce((n, x) => n + ((x.drops as Record<string, number>).mqtt_malformed_json ?? 0), 0),
      1,
    );
    assert.equal(
      all.reduce((n, x) => n + (x.sessions as number), 0),
      1,
    );
    await device.close();
    await eventually(() => owner.gateway.sessions.size === 0, 5000, "session closed");
  });

  it("GET /metrics: Prometheus text with gateway_sessions, gateway_dropped_total and gateway_opus_worker_restarts_total", async () => {
    for (const [i, g] of gateways.entries()) {
      const r = await get(g, "/metrics");
      assert.equal(r.status, 200);
      assert.match(r.type, /^text\/plain/);
      assert.match(r.text, /^# TYPE gateway_sessions gauge$/m);
      assert.match(r.text, new RegExp(`^gateway_sessions\\{instance="${i + 1}"\\} 0$`, "m"));
      assert.match(r.text, /^# TYPE gateway_dropped_total counter$/m);
      assert.match(r.text, /^# TYPE gateway_frames_up_total counter$/m);
      assert.match(r.text, /^process_resident_memory_bytes\{/m);
      assert.match(r.text, /^# TYPE gateway_opus_worker_restarts_total counter$/m);
    }
    const dropped = await Promise.all(gateways.map((g) => get(g, "/metrics")));
    assert.ok(
      dropped.some((r) =>
        /^gateway_dropped_total\{reason="mqtt_malformed_json",instance="\d"\} 1$/m.test(r.text),
      ),
      "the drop of the first test, counted by reason",
    );
    // A lost Opus worker, counted by reason from the instance's own pool (app.ts wires it).
    const first = gateways[0] as RunningGateway;
    await first.pool.killWorkerForTest(0);
    const lost = await get(first, "/metrics");
    assert.match(lost.text, /^gateway_opus_worker_restarts_total\{reason="exited",instance="1"\} 1$/m);
    assert.match(lost.text, /^gateway_opus_worker_restarts_total\{reason="hung",instance="1"\} 0$/m);
    await eventually(() => first.pool.allAlive, 5000, "the worker replaced");
  });

  it("GET /readyz: 200 while serving, 503 while draining; /livez stays 200", async () => {
    // Drain the instance that holds a session, so the drain has something to wait for.
    const device = await stack.device();
    const owner = Number((await device.hello()).sessionId.split("-")[0]);
    const g = gateways[owner - 1] as RunningGateway;
    const other = gateways[2 - owner] as RunningGateway;
    assert.equal((await get(g, "/readyz")).status, 200);
    const bye = device.waitForMessage((m) => m.type === "goodbye");
    const closingBefore = closing;
    const drained = g.drain();
    await bye; // the drain has begun: goodbye sent, the agent's close() is pending
    await eventually(() => closing > closingBefore, 5000, "the agent's close to start");
    const ready = await get(g, "/readyz");
    assert.equal(ready.status, 503);
    assert.deepEqual(JSON.parse(ready.text), { ready: false });
    const h = await health(g);
    assert.equal(h.ready, false);
    assert.equal(h.draining, true);
    assert.equal((await get(g, "/livez")).status, 200);
    assert.equal((await get(other, "/readyz")).status, 200, "the other instance");
    releaseAgents();
    await drained;
    stack.gateways.splice(stack.gateways.indexOf(g), 1);
    await assert.rejects(
      fetch(`http://127.0.0.1:${g.healthPort}/readyz`),
      "health server closed after the drain",
    );
  });
});
