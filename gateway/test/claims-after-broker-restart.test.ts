/**
 * Claims across a broker restart (docs/reliability.md, rule 7). The instances come back
 * one after the other; a claim one of them publishes before a peer has subscribed again is
 * lost for that peer. Each instance published its claims again only after its own
 * reconnect, so a session opened between the two reconnects was never claimed to the later
 * peer: that peer counted the owner's load short and, when the owner died, it was the
 * survivor with no claim to tell the device goodbye by (the device waited out its 120 s).
 * Real local broker, restarted on its port; instance 2 reaches it through a relay that
 * holds it out until the test lets it back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MqttClient } from "mqtt";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import type { RunningGateway } from "../src/app.ts";
import { type BrokerProxy, startBrokerProxy } from "./support/broker-proxy.ts";
import { eventually, type Stack, startStack, watchAsGateway } from "./support/stack.ts";

describe("claims after a broker restart", () => {
  let stack: Stack;
  let proxy: BrokerProxy;
  let restarted: BrokerProcess | undefined;
  let observer: MqttClient | undefined;
  let g1: RunningGateway;
  let g2: RunningGateway;

  before(async () => {
    stack = await startStack();
    proxy = await startBrokerProxy(stack.broker.port);
    const overrides = { WORKER_COUNT: "1", HELLO_BALANCE_SLACK: "0" };
    g1 = await stack.startGateway({ ...overrides, INSTANCE_ID: "1" });
    g2 = await stack.startGateway({ ...overrides, INSTANCE_ID: "2", MQTT_URL: proxy.url });
    await eventually(
      () => g1.gateway.peers.has(2) && g2.gateway.peers.has(1),
      10_000,
      "both instances seeing each other",
    );
  });
  after(async () => {
    observer?.end(true);
    await stack?.stop();
    await restarted?.stop();
    await proxy?.stop();
  });

  const subscribed = async (g: RunningGateway): Promise<boolean> => {
    const res = await fetch(`http://127.0.0.1:${g.healthPort}/health`);
    return ((await res.json()) as { brokerSubscribed?: boolean }).brokerSubscribed === true;
  };

  it("a claim made before a peer had subscribed again reaches it once it has", async () => {
    const { port, gatewayPassword } = stack.broker;
    proxy.refuse(true);
    await stack.broker.stop();
    restarted = await startBroker({ port, gatewayPassword });
    await eventually(() => subscribed(g1), 10_000, "instance 1 subscribed again");

    // Every claim on the broker, as a peer would hear it.
    const claims: string[] = [];
    const watcher = await watchAsGateway(restarted, "gateway/claims/+");
    observer = watcher;
    watcher.on("message", (topic, payload) => {
      if (!payload.toString().includes('"released":true')) claims.push(topic);
    });

    // Instance 2 is still away: the hello is instance 1's, and so is the claim it missed.
    const d = await stack.device();
    const reply = await d.hello();
    assert.ok(reply.sessionId.startsWith("1-"));
    const topic = `gateway/claims/${d.clientId}`;
    await eventually(() => claims.includes(topic), 5000, "the session's claim");

    proxy.refuse(false);
    await eventually(() => subscribed(g2), 10_000, "instance 2 subscribed again");
    await eventually(
      () => claims.filter((t) => t === topic).length >= 2,
      5000,
      "instance 1 to claim the device again once instance 2 is back",
    );

    // What the missed claim cost: instance 2, the survivor, knew no session to end.
    const goodbye = d.waitForMessage((m) => m.type === "goodbye" && m.session_id === reply.sessionId, 5000);
    await stack.killGateway(g1);
    await goodbye;
  });
});
