/**
 * The gateway's MQTT client against the real local broker, across a broker restart: a
 * subscription refused after the reconnect is reported (it used to be ignored, leaving the
 * instance connected but deaf) and subscribed again until it holds.
 *
 * The refusal is the broker's own (its ACL never lets a gateway read `devices/p2p/...`).
 * A gateway's real list is always granted, so to be refused only after the reconnect the
 * test adds that filter to the client's list between the two connects, and takes it out
 * again to let a retry succeed.
 */
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import { after, before, describe, it } from "node:test";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { BrokerClient, type BrokerEvents } from "../src/transport/mqtt.ts";

const HEARD = "gateway/test/resubscribe";
const DENIED = "devices/p2p/not-for-gateways";

describe("BrokerClient after a broker restart", () => {
  let broker: BrokerProcess;
  let client: BrokerClient | undefined;
  const seen = new EventEmitter();
  const events: BrokerEvents = {
    message: (topic) => seen.emit("message", topic),
    connected: () => seen.emit("connected"),
    disconnected: () => {},
    subscribeFailed: (err) => seen.emit("subscribeFailed", err),
  };

  before(async () => {
    broker = await startBroker();
  });

  after(async () => {
    await client?.end();
    await broker.stop();
  });

  // A client that stays silent about the refusal would leave the awaits below pending.
  it("a subscription refused after the reconnect is reported and retried until it holds", {
    timeout: 15_000,
  }, async () => {
    const subscriptions = [HEARD];
    client = await BrokerClient.connect(
      {
        url: broker.url,
        clientId: "gateway-resubscribe-test",
        username: "gateway",
        password: broker.gatewayPassword,
        subscriptions,
        will: { topic: "gateway/presence/99", payload: "gone", retain: false },
        reconnectMeanMs: 100,
      },
      events,
    );
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
    // The next retry (a timer away) asks only for what the broker grants.
    subscriptions.pop();
    await once(seen, "connected");
    const heard = once(seen, "message");
    client.publish(HEARD, "ping");
    assert.deepEqual(await heard, [HEARD]);
  });
});
