/**
 * MQTT over TLS: the local broker's TLS listener with a certificate from a test CA made
 * now. A device that verifies the certificate (as firmware does against its CA bundle)
 * connects over TLS with signed credentials and is served end to end; one that does not
 * trust the CA refuses the connection.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";
import { makeTestCa, type TestCa } from "./support/test-ca.ts";

const KEY = "tls-test-signing-key";

describe("MQTT over TLS (local broker, test CA)", () => {
  let ca: TestCa;
  let stack: Stack;

  before(async () => {
    ca = makeTestCa();
    stack = await startStack({ tls: { certFile: ca.certFile, keyFile: ca.keyFile }, deviceSigningKey: KEY });
    await stack.startGateway();
  });

  after(async () => {
    await stack.stop();
    ca.remove();
  });

  it("a device that trusts the CA connects over TLS, says hello and hears its echo", async () => {
    assert.ok(stack.broker.tlsUrl?.startsWith("mqtts://127.0.0.1:"));
    const device = await stack.device({ brokerUrl: stack.broker.tlsUrl, ca: ca.caPem, signingKey: KEY });
    const reply = await device.hello();
    assert.equal(reply.server, "127.0.0.1");
    device.listen("realtime");
    device.talk(600);
    await device.waitForAudio(5);
    assert.deepEqual(device.stats.errors, {});
  });

  it("the simulator's fleet of devices is served over TLS too (several at once)", async () => {
    const devices = await Promise.all(
      [1, 2, 3].map(() => stack.device({ brokerUrl: stack.broker.tlsUrl, ca: ca.caPem, signingKey: KEY })),
    );
    await Promise.all(devices.map((d) => d.hello()));
    await eventually(() => devices.every((d) => d.session !== undefined), 5000, "three sessions");
  });

  it("a device that does not trust the CA refuses the broker's certificate", async () => {
    const device = new SimulatedDevice({
      brokerUrl: stack.broker.tlsUrl as string,
      signingKey: KEY,
      index: 9001,
    });
    await assert.rejects(device.connect(), /self[- ]signed|unable to (get|verify)|certificate/i);
    await device.close();
  });
});
