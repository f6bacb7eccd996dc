/**
 * Which MQTT ports face the internet: 1883 without an MQTT domain; with one, 8883 (TLS)
 * and 1883 only while `mqttPlainPort` keeps it; the API droplet may reach the same ones.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, parseSettings, type Settings } from "../config.ts";
import { apiOutbound, deviceMqttPorts, gatewayInbound } from "../firewall-rules.ts";
import { readStackFile } from "../stack-file.ts";
import { PROD_FILE } from "./fleet-harness.ts";

const prod = readStackFile(PROD_FILE).config;
const settings = (extra: Record<string, string>): Settings =>
  parseSettings((key) => ({ ...prod, ...extra })[key], { allowPlaceholders: true });

const open = (s: Settings): string[] =>
  gatewayInbound(s)
    .filter((r) => r.sources.includes("0.0.0.0/0") && r.protocol === "tcp")
    .map((r) => r.portRange ?? "");

describe("MQTT ports on the gateway's firewall", () => {
  test("no MQTT domain: plain 1883 only", () => {
    const s = settings({});
    assert.equal(s.mqttDomain, undefined);
    assert.deepEqual(open(s), ["1883"]);
    assert.deepEqual(deviceMqttPorts(s), ["1883"]);
  });

  test("an MQTT domain opens 8883; 1883 stays while mqttPlainPort is not false", () => {
    assert.deepEqual(open(settings({ mqttDomain: "mqtt.voice.test" })), ["1883", "8883"]);
    assert.deepEqual(open(settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false" })), ["8883"]);
  });

  test("the API droplet may reach the same MQTT ports of the reserved IP", () => {
    const s = settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false" });
    const mqtt = apiOutbound(s, "db", "gw")
      .filter((r) => r.destinations.includes("gw"))
      .map((r) => r.portRange);
    assert.deepEqual(mqtt, ["8883"]);
  });

  test("closing 1883 without a domain, or a bad value, is refused naming the key", () => {
    assert.throws(
      () => settings({ mqttPlainPort: "false" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => p.startsWith("voice-fleet:mqttPlainPort:")),
    );
    assert.throws(
      () => settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "no" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => /mqttPlainPort: must be true or false/.test(p)),
    );
    assert.throws(
      () => settings({ mqttDomain: "not a host" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => p.startsWith("voice-fleet:mqttDomain:")),
    );
  });
});
