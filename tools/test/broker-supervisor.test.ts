/**
 * The local box's broker supervision: a broker killed with SIGKILL comes back on the same
 * port, and clients can connect to the same URL again.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import mqtt from "mqtt";
import { type SupervisedBroker, type SupervisorEvent, superviseBroker } from "../sim/broker-supervisor.ts";

describe("the supervised local broker", () => {
  let broker: SupervisedBroker | undefined;
  after(async () => {
    await broker?.stop();
  });

  it("is started again on the same port after kill -9, and serves clients there", async () => {
    const events: SupervisorEvent[] = [];
    let restarted: () => void = () => {};
    const back = new Promise<void>((resolve) => {
      restarted = resolve;
    });
    broker = await superviseBroker({
      restartDelayMs: 100,
      onEvent: (e) => {
        events.push(e);
        if (e.kind === "restarted") restarted();
      },
    });
    const first = broker.current;
    assert.ok(first);
    first.process.kill("SIGKILL");
    await back;
    assert.equal(broker.restarts, 1);
    assert.notEqual(broker.current?.process.pid, first.process.pid);
    assert.deepEqual(events[0], { kind: "exited", code: null, signal: "SIGKILL" });

    const client = mqtt.connect(broker.url, {
      username: "gateway",
      password: broker.gatewayPassword,
      clientId: "gateway-test-supervisor",
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    client.end(true);
  });

  it("is not restarted after stop()", async () => {
    assert.ok(broker);
    const proc = broker.current?.process;
    await broker.stop();
    assert.ok(proc && (proc.exitCode !== null || proc.signalCode !== null));
    // A negative needs a wait: three times the restart delay, and still no restart.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(broker.restarts, 1);
  });
});
