/**
 * The gateway's MQTT client (transport/mqtt.ts) across a broker restart, with the real
 * local broker stopped and started again on the same port. Every reconnect subscribes
 * again (clean sessions forget subscriptions), but not to what was unsubscribed: a drain
 * unsubscribes from the shared ingest, and a broker that restarts during the drain must
 * not hand the draining instance hellos again.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { BrokerClient, type BrokerEvents } from "../src/transport/mqtt.ts";

/** Stands for the shared ingest: the subscription a drain stops. */
const STOPPED = "gateway/test-stopped/+";
/** Stands for the coordination topics a draining instance keeps. */
const KEPT = "gateway/test-kept/+";

describe("the gateway's broker client across a broker restart", () => {
  let broker: BrokerProcess | undefined;
  const clients: BrokerClient[] = [];

  after(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    await broker?.stop();
  });

  const connect = async (name: string, subscriptions: string[], events: Partial<BrokerEvents> = {}) => {
    const b = broker as BrokerProcess;
    const client = await BrokerClient.connect(
      {
        url: b.url,
        clientId: `gateway-test-${name}`,
        username: "gateway",
        password: b.gatewayPassword,
        subscriptions,
        will: { topic: `gateway/test-will/${name}`, payload: "gone", retain: false },
        reconnectMeanMs: 100,
      },
      {
        message: () => {},
        connected: () => {},
        disconnected: () => {},
        subscribeFailed: () => {},
        ...events,
      },
    );
    clients.push(client);
    return client;
  };

  it("a subscription stopped before the restart is not taken again after it", async () => {
    broker = await startBroker();
    const received: string[] = [];
    let markerArrived = () => {};
    const marker = new Promise<void>((resolve) => (markerArrived = resolve));
    let connects = 0;
    let reconnected = () => {};
    const back = new Promise<void>((resolve) => (reconnected = resolve));
    const client = await connect("1", [STOPPED, KEPT], {
      message: (topic) => {
        received.push(topic);
        if (topic === "gateway/test-kept/marker") markerArrived();
      },
      connected: () => {
        if (++connects === 2) reconnected();
      },
    });
    await client.unsubscribe(STOPPED);

    const { port, gatewayPassword } = broker;
    await broker.stop();
    broker = await startBroker({ port, gatewayPassword });
    await back;

    const sender = await connect("2", ["gateway/test-sender/+"]);
    // One sender, one subscriber: the broker delivers the two in the order sent.
    sender.publish("gateway/test-stopped/hello", "x");
    sender.publish("gateway/test-kept/marker", "x");
    await marker;
    assert.deepEqual(received, ["gateway/test-kept/marker"]);
  });
});
