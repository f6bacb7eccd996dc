/**
 * The gateway's MQTT client (transport/mqtt.ts) across a broker restart, with the real
 * local broker stopped and started again on the same port. Every reconnect subscribes
 * again (clean sessions forget subscriptions), but not to what was unsubscribed: a drain
 * unsubscribes from the shared ingest, and a broker that restarts during the drain must
 * not hand the draining instance hellos again. A subscription refused after a reconnect is
 * reported and subscribed again until it holds: it used to be ignored, leaving the instance
 * connected but deaf. A connection the client closes itself (the drain's end(), kill's
 * destroy()) is no lost connection: it used to be reported as one, and every gateway logged
 * "broker connection lost; reconnecting" at the end of a clean drain.
 */
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import { afterEach, describe, it } from "node:test";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { BrokerClient, type BrokerEvents } from "../src/transport/mqtt.ts";

/** Stands for the shared ingest: the subscription a drain stops. */
const STOPPED = "gateway/test-stopped/+";
/** Stands for the coordination topics a draining instance keeps. */
const KEPT = "gateway/test-kept/+";
/** A filter the broker's own ACL never lets a gateway read. */
const DENIED = "devices/p2p/not-for-gateways";

describe("the gateway's broker client across a broker restart", () => {
  let broker: BrokerProcess | undefined;
  const clients: BrokerClient[] = [];

  // Each test starts its own broker; its clients and broker go with it.
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.destroy()));
    await broker?.stop();
    broker = undefined;
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

  // A gateway's real list is always granted, so to be refused only after the reconnect the
  // test adds the denied filter to the client's list (read at every connect) between the
  // two connects, and takes it out again to let a retry succeed. A client that stayed
  // silent about the refusal would leave the awaits below pending until the time bound.
  it("a subscription refused after the reconnect is reported and retried until it holds", {
    timeout: 15_000,
  }, async () => {
    broker = await startBroker();
    const seen = new EventEmitter();
    const subscriptions = ["gateway/test-heard/+"];
    const client = await connect("3", subscriptions, {
      message: (topic) => seen.emit("message", topic),
      connected: () => seen.emit("connected"),
      subscribeFailed: (err) => seen.emit("subscribeFailed", err),
    });
    subscriptions.push(DENIED);
    const { port, gatewayPassword } = broker;
    await broker.stop();
    broker = await startBroker({ port, gatewayPassword });
    let connected = 0;
    seen.on("connected", () => connected++);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [err] = (await once(seen, "subscribeFailed")) as [Error];
      assert.match(err.message, new RegExp(`refused subscriptions: ${DENIED}`));
    }
    assert.equal(connected, 0, "connected reported while a filter was refused");
    assert.deepEqual(
      { connected: client.connected, subscribed: client.subscribed },
      { connected: true, subscribed: false },
      "connected but deaf: what /readyz answers 503 for",
    );
    // The next retry (a timer away) asks only for what the broker grants.
    subscriptions.pop();
    await once(seen, "connected");
    assert.equal(client.subscribed, true);
    const heard = once(seen, "message");
    client.publish("gateway/test-heard/ping", "ping");
    assert.deepEqual(await heard, ["gateway/test-heard/ping"]);
  });

  it("its own end() or destroy() is not reported as a lost connection; a broker that goes is", async () => {
    broker = await startBroker();
    const lost: string[] = [];
    const ended = await connect("4", [KEPT], { disconnected: () => lost.push("end") });
    const destroyed = await connect("5", [KEPT], { disconnected: () => lost.push("destroy") });
    let brokerGone = () => {};
    const gone = new Promise<void>((resolve) => (brokerGone = resolve));
    await connect("6", [KEPT], {
      disconnected: () => {
        lost.push("broker");
        brokerGone();
      },
    });
    await ended.end();
    await destroyed.destroy();
    // After both closes, the broker's own stop: the one connection it ends is reported.
    await broker.stop();
    await gone;
    // Client 6 may have failed a reconnect meanwhile (a second "broker").
    assert.deepEqual([...new Set(lost)], ["broker"]);
  });
});
