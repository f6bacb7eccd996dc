/**
 * The path a real device takes against the local box, with device authentication on:
 * a firmware-shaped OTA request, then MQTT with exactly what the OTA returned, to the
 * real broker holding the signing key, then hello and voice through a real gateway.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { boardUuid, provision, provisionDevice } from "../../tools/sim/provision.ts";
import { type OtaServer, startOtaServer } from "../src/ota/ota-server.ts";
import { type Stack, startStack } from "./support/stack.ts";

const KEY = "5e1b7a9c3d2f4e6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a";

describe("provisioned through the OTA, served with device authentication on", () => {
  let stack: Stack;
  let ota: OtaServer;
  before(async () => {
    stack = await startStack({ deviceSigningKey: KEY });
    await stack.startGateway();
    ota = await startOtaServer({
      settings: { mqttEndpoint: `127.0.0.1:${stack.broker.port}`, signingKey: KEY },
    });
  });
  after(async () => {
    await ota?.close();
    await stack?.stop();
  });

  it("connects with the OTA's credentials, says hello and hears its voice back", async () => {
    const device = await provisionDevice({ otaUrl: ota.url, index: 4242 });
    stack.devices.push(device);
    assert.equal(device.clientId, `GID_default@@@02_00_00_10_92_01@@@${boardUuid(device.mac)}`);
    await device.connect();
    await device.hello();
    device.listen("realtime");
    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    device.talk(600);
    await stop;
    assert.ok(device.stats.framesReceived >= 8, `received ${device.stats.framesReceived} frames`);
    assert.deepEqual(device.stats.errors, {});
  });

  it("is refused by the broker when the OTA's password is altered (authentication is really on)", async () => {
    const p = await provision({
      otaUrl: ota.url,
      mac: "02:00:00:00:99:01",
      uuid: boardUuid("02:00:00:00:99:01"),
    });
    const flipped = `${p.password[0] === "A" ? "B" : "A"}${p.password.slice(1)}`;
    const client = mqtt.connect(p.brokerUrl, {
      clientId: p.clientId,
      username: p.username,
      password: flipped,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    const outcome = await new Promise<string>((resolve) => {
      client.once("connect", () => resolve("connected"));
      client.once("error", (err) => resolve(`refused: ${err.message}`));
    });
    client.end(true);
    assert.match(outcome, /^refused: /);
  });
});
