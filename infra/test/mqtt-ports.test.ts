/**
 * Which MQTT ports face the internet: 1883 without an MQTT domain; with one, 8883 (TLS)
 * and 1883 only while `mqttPlainPort` keeps it; the API droplet may reach the same ones.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readUserDataFiles } from "../../cloud-init/render.ts";
import { ConfigError, parseSettings, type Settings } from "../config.ts";
import { apiOutbound, deviceMqttPorts, gatewayInbound } from "../firewall-rules.ts";
import { checkSecretPresence, SECRET_SPECS, type Secrets } from "../secrets.ts";
import { readStackFile } from "../stack-file.ts";
import { DROPLET, PROD_FILE, runFleet } from "./fleet-harness.ts";

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
    assert.deepEqual(
      open(settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false", otaMqttTls: "true" })),
      ["8883"],
    );
  });

  test("the API droplet may reach the same MQTT ports of the reserved IP", () => {
    const s = settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false", otaMqttTls: "true" });
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
      () => settings({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => /^voice-fleet:mqttPlainPort: .*otaMqttTls/.test(p)),
      "closing 1883 while the OTA still hands it out",
    );
    assert.throws(
      () => settings({ mqttDomain: "not a host" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => p.startsWith("voice-fleet:mqttDomain:")),
    );
  });
});

test("mqttDomain the same name as domain is refused naming the key: one A record cannot point at both reserved IPs", () => {
  assert.throws(
    () => settings({ domain: "voice.test", mqttDomain: "voice.test" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.length === 1 &&
      /^voice-fleet:mqttDomain: must differ from domain/.test(e.problems[0] ?? ""),
  );
  assert.equal(
    settings({ domain: "voice.test", mqttDomain: "mqtt.voice.test" }).mqttDomain,
    "mqtt.voice.test",
  );
});

describe("otaMqttTls: the OTA hands out <mqttDomain>:8883 only when the operator says so", () => {
  test("off by default; true without mqttDomain or a bad value is refused naming the key", () => {
    assert.equal(settings({ mqttDomain: "mqtt.voice.test" }).otaMqttTls, false);
    assert.equal(settings({ mqttDomain: "mqtt.voice.test", otaMqttTls: "true" }).otaMqttTls, true);
    assert.throws(
      () => settings({ otaMqttTls: "true" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => /^voice-fleet:otaMqttTls: .*mqttDomain/.test(p)),
    );
    assert.throws(
      () => settings({ mqttDomain: "mqtt.voice.test", otaMqttTls: "yes" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => /^voice-fleet:otaMqttTls: must be true or false/.test(p)),
    );
  });

  test("the up that creates the TLS gateway keeps the OTA on the reserved IP's 1883 (mocks)", async () => {
    const run = await runFleet({ mqttDomain: "mqtt.voice.test" });
    const gw = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData));
    assert.match(
      gw.get("/etc/emqx/emqx.env")?.content.toString() ?? "",
      /^EMQX_LISTENERS__SSL__DEFAULT__ENABLE=true$/m,
    );
    const ip = String(run.find("digitalocean:index/reservedIp:ReservedIp", "gateway-ip").state.ipAddress);
    const api = readUserDataFiles(String(run.find(DROPLET, "api").inputs.userData));
    const env = api.get("/etc/manager-api/api.env")?.content.toString() ?? "";
    assert.match(env, new RegExp(`^MQTT_ENDPOINT=${ip.replaceAll(".", "\\.")}:1883$`, "m"));
    assert.doesNotMatch(env, /8883/);
  });
});

describe("an MQTT domain through the stack (mocks)", () => {
  test("the gateway's user data gets the TLS listener and the token; with otaMqttTls the OTA endpoint becomes <domain>:8883", async () => {
    const run = await runFleet({ mqttDomain: "mqtt.voice.test", mqttPlainPort: "false", otaMqttTls: "true" });
    const gw = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData));
    const token = run.secrets.mqttDnsToken ?? assert.fail("no stand-in DNS token");
    const ini = gw.get("/etc/letsencrypt/digitalocean.ini");
    assert.equal(ini?.permissions, "0600");
    assert.match(ini?.content.toString() ?? "", new RegExp(`^dns_digitalocean_token = ${token}$`, "m"));
    const emqxEnv = gw.get("/etc/emqx/emqx.env")?.content.toString() ?? "";
    assert.match(emqxEnv, /^EMQX_LISTENERS__SSL__DEFAULT__ENABLE=true$/m);
    assert.match(emqxEnv, /^EMQX_LISTENERS__TCP__DEFAULT__ENABLE=false$/m);
    const api = readUserDataFiles(String(run.find(DROPLET, "api").inputs.userData));
    assert.match(
      api.get("/etc/manager-api/api.env")?.content.toString() ?? "",
      /^MQTT_ENDPOINT=mqtt\.voice\.test:8883$/m,
    );
  });

  test("without it: no TLS in user data", async () => {
    const run = await runFleet({});
    const gw = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData));
    assert.equal(gw.get("/etc/letsencrypt/digitalocean.ini"), undefined);
  });

  test("the DNS token and the domain come together, or neither (naming the key)", () => {
    const required = new Set(SECRET_SPECS.filter((x) => x.required).map((x) => x.key));
    const withDomain = settings({ mqttDomain: "mqtt.voice.test" });
    assert.throws(
      () => checkSecretPresence(withDomain, required),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => p.startsWith("voice-fleet:mqttDnsToken:")),
    );
    assert.throws(
      () => checkSecretPresence(settings({}), new Set<keyof Secrets>([...required, "mqttDnsToken"])),
      /mqttDnsToken/,
    );
    checkSecretPresence(withDomain, new Set<keyof Secrets>([...required, "mqttDnsToken"]));
  });
});
