/**
 * A device's connection taken over while the instance holding its session had its own
 * broker connection down. The broker's `lifecycle/disconnected/<clientid>` event is QoS 0
 * and went to nobody; with no live peer (a lone instance, or every peer away too) nothing
 * else ends the old session (no will-driven goodbye: docs/reliability.md, rule 3), so it
 * idled on until its 120 s idle timeout with its room and agent. The broker now retains
 * each device's last lifecycle event, with the time it happened, for the idle timeout
 * (docs/broker-contract.md, row 4): an instance that subscribes again hears what it
 * missed, and ends the sessions that event outdated. Real local broker; the instance
 * reaches it through a relay the test cuts and holds shut.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MqttClient } from "mqtt";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { RunningGateway } from "../src/app.ts";
import { TAKEOVER_GRACE_MS } from "../src/session/takeover.ts";
import { type BrokerProxy, startBrokerProxy } from "./support/broker-proxy.ts";
import { eventually, type Stack, startStack, watchAsGateway } from "./support/stack.ts";

describe("a takeover while the instance's own broker connection is down", () => {
  let stack: Stack;
  let proxy: BrokerProxy;
  let observer: MqttClient | undefined;
  let g: RunningGateway;

  before(async () => {
    stack = await startStack();
    proxy = await startBrokerProxy(stack.broker.port);
    g = await stack.startGateway({ WORKER_COUNT: "1", INSTANCE_ID: "1", MQTT_URL: proxy.url });
  });
  after(async () => {
    observer?.end(true);
    await stack?.stop();
    await proxy?.stop();
  });

  /** Every lifecycle event, as an instance that stayed connected would hear it. */
  const watchLifecycle = async (): Promise<string[]> => {
    const seen: string[] = [];
    const watcher = await watchAsGateway(stack.broker, "lifecycle/disconnected/+");
    observer = watcher;
    watcher.on("message", (topic, _payload, packet) => {
      if (!packet.retain) seen.push(topic);
    });
    return seen;
  };

  const hello = () => Buffer.from(JSON.stringify(firmwareHello()));

  it("ends the old connection's session once its broker connection is back", async () => {
    const old = await stack.device();
    const reply = old.waitForMessage((m) => m.type === "hello", 5000);
    // The hello as the broker would hand it to the instance, well before the takeover.
    g.gateway.handleBrokerMessage(`ingest/${old.clientId}`, hello(), Date.now() - TAKEOVER_GRACE_MS - 1000);
    await reply;
    const seen = await watchLifecycle();

    proxy.refuse(true);
    proxy.cut();
    const fresh = await stack.device({ clientId: old.clientId });
    // The takeover event went out while the instance was away.
    await eventually(
      () => seen.includes(`lifecycle/disconnected/${old.clientId}`),
      5000,
      "the takeover event",
    );
    assert.ok(g.gateway.sessions.byClient(old.clientId), "the session outlived the missed event so far");

    proxy.refuse(false);
    await eventually(
      () => g.gateway.sessions.byClient(old.clientId) === undefined,
      10_000,
      "the session of the taken-over connection to end (it idled on for 120 s before)",
    );
    assert.equal(g.metrics.closes().mqtt_takenover, 1);
    await fresh.close();
  });

  it("a replayed event older than the session's hello leaves the session", async () => {
    const d = await stack.device();
    const reply = d.waitForMessage((m) => m.type === "hello", 5000);
    g.gateway.handleBrokerMessage(`ingest/${d.clientId}`, hello());
    await reply;
    // The device's previous connection ended a minute ago: heard again on a resubscribe.
    const at = Date.now() - 60_000;
    for (const reason of ["normal", "takenover"]) {
      g.gateway.handleBrokerMessage(
        `lifecycle/disconnected/${d.clientId}`,
        Buffer.from(JSON.stringify({ reason, at })),
      );
    }
    assert.ok(g.gateway.sessions.byClient(d.clientId), "a session opened after the event lives");
  });
});
