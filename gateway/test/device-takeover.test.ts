/**
 * A device's MQTT connection taken over by a new one with the same client id (it rebooted,
 * or its Wi-Fi dropped and it reconnected before the broker noticed the old connection
 * dead). The broker announces `lifecycle/disconnected/<clientid>` with reason "takenover"
 * to every instance; the session of the old connection used to live on until its 120 s
 * idle timeout, holding its room, agent and UDP state. It ends at once now, and a session
 * of the new connection lives, on whichever instance, in whichever order its hello and the
 * event arrive (docs/reliability.md, rule 3, "Takeovers"). Real local broker, in-process gateways.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { RunningGateway } from "../src/app.ts";
import { TAKEOVER_GRACE_MS } from "../src/session/takeover.ts";
import { eventually, type Stack, sessionIdsOf, startStack } from "./support/stack.ts";

const hello = () => Buffer.from(JSON.stringify(firmwareHello()));

describe("a device connection taken over by a new one with the same client id", () => {
  let stack: Stack;
  let g1: RunningGateway;
  let g2: RunningGateway;

  before(async () => {
    stack = await startStack();
    // No balancing: each hello below is handed to a chosen instance.
    [g1, g2] = (await stack.startGateways(2, {
      overrides: { WORKER_COUNT: "1", HELLO_BALANCE_SLACK: "0" },
    })) as [RunningGateway, RunningGateway];
  });
  after(async () => {
    await stack?.stop();
  });

  const sessionsOf = (clientId: string) => sessionIdsOf(stack, clientId);

  /** A session on `g` for `device`, opened by a hello that arrived `agoMs` ago. */
  const openOn = async (g: RunningGateway, device: SimulatedDevice, agoMs: number) => {
    const reply = device.waitForMessage((m) => m.type === "hello", 5000);
    g.gateway.handleBrokerMessage(`ingest/${device.clientId}`, hello(), Date.now() - agoMs);
    return String((await reply).session_id);
  };

  const takeovers = async (g: RunningGateway, outcome: string) =>
    (await g.metrics.deviceTakeovers.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

  it("the old connection's session ends at once, counted, and the new connection's hello is served", async () => {
    const old = await stack.device();
    const oldSession = await openOn(g1, old, TAKEOVER_GRACE_MS + 1000);
    const closedBefore = g1.metrics.closes().mqtt_takenover ?? 0;

    const fresh = await stack.device({ clientId: old.clientId });
    await eventually(
      () => g1.gateway.sessions.byClient(old.clientId) === undefined,
      5000,
      "the taken-over connection's session to end (it idled on for 120 s before)",
    );
    assert.equal(g1.metrics.closes().mqtt_takenover, closedBefore + 1);

    const reply = await fresh.hello();
    assert.notEqual(reply.sessionId, oldSession);
    await eventually(() => sessionsOf(fresh.clientId).length === 1, 5000, "the new session");
    assert.deepEqual(sessionsOf(fresh.clientId), [reply.sessionId]);
    assert.ok(!fresh.messages.some((m) => m.type === "goodbye" && m.session_id === reply.sessionId));
    await fresh.close();
  });

  it("a new connection's session on another instance, its hello handled before the event, lives", async () => {
    const old = await stack.device();
    await openOn(g1, old, TAKEOVER_GRACE_MS + 1000);
    // The new connection's hello, on instance 2, handled before the takeover event reaches
    // it (the broker publishes the event from the old connection's teardown, which can
    // trail the new connection's first messages).
    const newSession = await openOn(g2, old, 0);
    const keptBefore = await takeovers(g2, "kept_recent");

    const fresh = await stack.device({ clientId: old.clientId });
    await eventually(
      async () => (await takeovers(g2, "kept_recent")) === keptBefore + 1,
      5000,
      "instance 2 to handle the takeover event",
    );
    await eventually(() => sessionsOf(old.clientId).length === 1, 5000, "the old session gone");
    assert.deepEqual(sessionsOf(old.clientId), [newSession]);
    assert.equal(g2.metrics.closes().mqtt_takenover ?? 0, 0);
    assert.ok(!fresh.messages.some((m) => m.type === "goodbye" && m.session_id === newSession));
    await fresh.close();
  });
});
