/**
 * Owner routing (docs/broker-contract.md, docs/reliability.md): four gateway instances in-process
 * behind the real local broker, which picks one share-group member per message by a hash
 * of its topic (one device, one instance). When a fifth instance joins, the pick moves for
 * most devices: every follow-up message of 200 devices must still reach the agent exactly
 * once, on the instance whose id prefixes the session id; a message for a session nobody
 * holds is answered `goodbye` within 1 s, also when its owner instance has crashed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import type { AgentFactory, DeviceEvent } from "../src/agent/agent-bridge.ts";
import type { RunningGateway } from "../src/app.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

const INSTANCES = 4;
const DEVICES = 200;
const MCP_PER_DEVICE = 3;
/** listen start, wake word, 3 x mcp, abort, listen stop. */
const MESSAGES_PER_DEVICE = 4 + MCP_PER_DEVICE;

interface Recorded {
  readonly instanceId: number;
  readonly sessionId: string;
  readonly clientId: string;
  readonly event: DeviceEvent;
}

/** An agent that records every device event with the instance that delivered it. */
function recordingAgent(instanceId: number, log: Recorded[]): AgentFactory {
  return (info) => ({
    pushAudio: () => {},
    onDeviceEvent: (event) =>
      log.push({ instanceId, sessionId: info.sessionId, clientId: info.clientId, event }),
    close: async () => {},
  });
}

function ownerOf(sessionId: string): number {
  return Number(sessionId.split("-")[0]);
}

/** Sends a message with a stale session id and resolves with the ms until its goodbye. */
async function goodbyeLatency(device: SimulatedDevice, sessionId: string): Promise<number> {
  const started = performance.now();
  const bye = device.waitForMessage((m) => m.type === "goodbye" && m.session_id === sessionId, 1000);
  device.send({ session_id: sessionId, type: "listen", state: "start", mode: "auto" });
  await bye;
  return performance.now() - started;
}

function perInstance(sessionIds: string[]): number[] {
  const counts = Array.from({ length: INSTANCES }, () => 0);
  for (const s of sessionIds) counts[ownerOf(s) - 1] = (counts[ownerOf(s) - 1] ?? 0) + 1;
  return counts;
}

function hex2(i: number): string {
  return (i & 0xff).toString(16).padStart(2, "0");
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0).toFixed(1);
  return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`;
}

describe(`owner routing: ${INSTANCES} instances, ${DEVICES} devices, a shared subscription`, () => {
  let stack: Stack;
  /** In instance order: gateways[i] is INSTANCE_ID i + 1. */
  let gateways: RunningGateway[] = [];
  const log: Recorded[] = [];
  const devices: SimulatedDevice[] = [];
  const sessions = new Map<SimulatedDevice, string>();

  const helloAll = (list: SimulatedDevice[]) =>
    Promise.all(list.map(async (d) => sessions.set(d, (await d.hello()).sessionId)));

  before(async () => {
    stack = await startStack();
    gateways = await stack.startGateways(INSTANCES, {
      overrides: { WORKER_COUNT: "1" },
      agentFactory: (id) => recordingAgent(id, log),
    });
    // Fixed client ids: the broker's pick is a hash of them, so the spread is reproducible.
    devices.push(
      ...(await Promise.all(
        Array.from({ length: DEVICES }, (_, i) =>
          stack.device({
            clientId: `GID_test@@@02_00_00_00_${hex2(i)}_01@@@00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
          }),
        ),
      )),
    );
    await helloAll(devices);
  });
  after(async () => {
    await stack.stop();
  });

  it("holds each session on the instance its id names", () => {
    const counts = perInstance([...sessions.values()]);
    for (const [i, g] of gateways.entries()) assert.equal(g.gateway.sessions.size, counts[i]);
    assert.equal(
      counts.reduce((a, b) => a + b),
      DEVICES,
    );
  });

  // The local broker picks by a hash of the topic, like EMQX's hash_topic (broker contract
  // rule 5), and the gateways pass hellos on to the least loaded instance (a hash alone
  // spreads binomially: Binomial(200, 1/4) has sd 6.1; docs/reliability.md).
  it("spreads sessions over every instance within +-20% of even", () => {
    const counts = perInstance([...sessions.values()]);
    const even = DEVICES / INSTANCES;
    console.log(`# sessions per instance ${counts.join("/")}`);
    for (const c of counts)
      assert.ok(Math.abs(c - even) <= 0.2 * even, `sessions per instance ${counts.join("/")}`);
  });

  it("hands every listen/abort/mcp/goodbye to the agent exactly once, on the owning instance", async () => {
    // A fifth instance joins: the broker's hash now picks it, or another instance, for most
    // devices, and their messages must be forwarded to the owner of the session.
    const joined = await stack.startGateway(
      { WORKER_COUNT: "1", INSTANCE_ID: String(INSTANCES + 1) },
      recordingAgent(INSTANCES + 1, log),
    );
    await eventually(
      () => stack.gateways.every((g) => g.gateway.peers.size === INSTANCES),
      10_000,
      "the fifth instance seen by all",
    );
    gateways.push(joined);
    let nextRpcId = 1;
    const sentRpc = new Map<number, SimulatedDevice>();
    const sentOrder = new Map<string, string[]>();
    for (const d of devices) {
      const session_id = sessions.get(d) as string;
      const order: string[] = ["listen_start", "wake_word"];
      d.send({ session_id, type: "listen", state: "start", mode: "auto" });
      d.send({ session_id, type: "listen", state: "detect", text: "hi" });
      for (let k = 0; k < MCP_PER_DEVICE; k++) {
        const id = nextRpcId++;
        sentRpc.set(id, d);
        order.push(`mcp:${id}`);
        d.send({ session_id, type: "mcp", payload: { jsonrpc: "2.0", id, result: { ok: true } } });
      }
      d.send({ session_id, type: "abort", reason: "wake_word_detected" });
      d.send({ session_id, type: "listen", state: "stop" });
      order.push("abort", "listen_stop");
      sentOrder.set(d.clientId, order);
    }
    await eventually(() => log.length >= DEVICES * MESSAGES_PER_DEVICE, 15_000, "every message recorded");
    // Goodbye last, once everything before it has arrived: forwarded messages may overtake
    // direct ones. No goodbye comes back for it (the device left); the agent records it.
    for (const d of devices) d.send({ session_id: sessions.get(d) as string, type: "goodbye" });
    await eventually(
      () => log.length >= DEVICES * (MESSAGES_PER_DEVICE + 1),
      15_000,
      "every device goodbye recorded",
    );

    assert.equal(log.length, DEVICES * (MESSAGES_PER_DEVICE + 1), "no message lost, none handled twice");
    const rpcSeen = new Map<number, number>();
    const recvOrder = new Map<string, string[]>();
    for (const r of log) {
      const device = devices.find((d) => d.clientId === r.clientId);
      assert.ok(device, `event for an unknown client ${r.clientId}`);
      assert.equal(r.sessionId, sessions.get(device), "recorded on the device's current session");
      assert.equal(r.instanceId, ownerOf(r.sessionId), "recorded by the instance named in the session id");
      const key = r.event.kind === "mcp" ? `mcp:${r.event.payload.id}` : r.event.kind;
      if (r.event.kind === "mcp") {
        const id = r.event.payload.id as number;
        assert.equal(sentRpc.get(id), device, `mcp ${id} recorded for the device that sent it`);
        rpcSeen.set(id, (rpcSeen.get(id) ?? 0) + 1);
      }
      recvOrder.set(r.clientId, [...(recvOrder.get(r.clientId) ?? []), key]);
    }
    assert.equal(rpcSeen.size, sentRpc.size);
    assert.ok(
      [...rpcSeen.values()].every((n) => n === 1),
      "every mcp id recorded exactly once",
    );
    let reordered = 0;
    for (const [client, sent] of sentOrder) {
      const got = recvOrder.get(client) ?? [];
      assert.deepEqual([...got].sort(), [...sent, "device_goodbye"].sort());
      if (got.slice(0, sent.length).join() !== sent.join()) reordered++;
    }
    let forwarded = 0;
    for (const g of gateways) for (const v of (await g.metrics.forwarded.get()).values) forwarded += v.value;
    console.log(
      `# ${log.length} events, ${forwarded} forwarded between instances; devices whose messages reached the agent out of order: ${reordered}/${DEVICES}`,
    );
    assert.ok(forwarded > 0, "some messages took the forward path");
  });

  it("answers a message for a session nobody holds with goodbye within 1 s", async () => {
    // The sessions above ended with the devices' goodbyes: their ids are stale now.
    const ms = await Promise.all(devices.map((d) => goodbyeLatency(d, sessions.get(d) as string)));
    // An earlier boot of a live instance.
    const old = devices[0] as SimulatedDevice;
    ms.push(await goodbyeLatency(old, "2-zzzzzzzz-0123456789abcdef"));
    console.log(`# stale session -> goodbye: ${summary(ms)}`);
  });

  it("answers a message for a session of a crashed instance with goodbye within 1 s", async () => {
    await helloAll(devices);
    const victim = gateways[INSTANCES - 1];
    assert.ok(victim);
    const orphans = devices.filter((d) => ownerOf(sessions.get(d) as string) === INSTANCES);
    assert.ok(orphans.length > 0);
    const killedAt = performance.now();
    await stack.killGateway(victim);
    // Sent at once, before the survivors know: messages forwarded to the dead instance in
    // that window are answered goodbye when its will arrives.
    const byes = Promise.all(orphans.map((d) => goodbyeLatency(d, sessions.get(d) as string)));
    await eventually(
      () => stack.gateways.every((g) => !g.gateway.peers.has(INSTANCES)),
      5000,
      "the crashed instance's presence to go",
    );
    console.log(
      `# killed instance ${INSTANCES}: presence gone after ${(performance.now() - killedAt).toFixed(0)} ms`,
    );
    const ms = await byes;
    console.log(`# ${orphans.length} orphaned sessions -> goodbye: ${summary(ms)}`);
    // And they are served again by the others.
    const again = await Promise.all(orphans.map((d) => d.hello()));
    for (const r of again) assert.notEqual(ownerOf(r.sessionId), INSTANCES);
  });
});
