/**
 * Property tests (fast-check) of the configuration loader: random environments and env
 * files give a sane config or a ConfigError naming the variable, never anything else.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type GatewayConfig, parseConfig } from "../src/config.ts";
import { ConfigError, loadEnv } from "../src/env.ts";
import { MIN_WATCHDOG_STALL_MS } from "../src/ops/watchdog.ts";
import { RUNS, Tally } from "./support/fuzz.ts";

const CONFIG_VARS = [
  "INSTANCE_ID",
  "UDP_PORT",
  "UDP_BIND",
  "UDP_SOURCE_RATE",
  "UDP_SOURCE_BURST",
  "UDP_ADDRESS_RATE",
  "UDP_ADDRESS_BURST",
  "PUBLIC_HOST",
  "WORKER_COUNT",
  "OPUS_INLINE_STREAMS",
  "HEALTH_PORT",
  "HEALTH_BIND",
  "MQTT_URL",
  "MQTT_USERNAME",
  "MQTT_PASSWORD",
  "OPUS_COMPLEXITY",
  "OPUS_BITRATE",
  "SESSION_ALERT_THRESHOLD",
  "IDLE_TIMEOUT_MS",
  "MQTT_KEEPALIVE_S",
  "WATCHDOG_STALL_MS",
  "HELLO_BALANCE_SLACK",
  "MAX_SESSION_MS",
  "DRAIN_TIMEOUT_MS",
  "TOTALS_INTERVAL_MS",
  "LOG_LEVEL",
  "LIVEKIT_URL",
  "LIVEKIT_API_KEY",
  "LIVEKIT_API_SECRET",
  "AGENT_NAME",
  "AGENT_WEBHOOK_URL",
  "AGENT_WEBHOOK_TOKEN",
  "LIVEKIT_EMPTY_TIMEOUT_S",
  "LIVEKIT_SWEEP_INTERVAL_MS",
  "AGENT_LATE_SIGNAL_MS",
];

const envValue = fc.oneof(
  fc.integer({ min: -10, max: 100_000 }).map(String),
  fc.integer().map(String),
  fc.constantFrom("", " ", "0", "1", "3", "00", "+1", "1e3", "0x10", "1.5", " 42 ", "NaN", "Infinity"),
  fc.constantFrom(
    "mqtt://127.0.0.1:1883",
    "mqtts://b",
    "mqtt://u:p@h",
    "http://x",
    "wss://lk",
    "ws://",
    "not a url",
  ),
  fc.constantFrom(
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "fatal",
    "loud",
    "https://agent.example/dispatch",
  ),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
);

/** The invariants a config that parsed must hold. */
function sane(c: GatewayConfig): boolean {
  const int = (n: number, min: number, max: number) => Number.isInteger(n) && n >= min && n <= max;
  return (
    int(c.instanceId, 1, 999) &&
    int(c.udpPort, 0, 65535) &&
    int(c.healthPort, 0, 65535) &&
    int(c.workerCount, 1, 64) &&
    int(c.opusComplexity, 0, 10) &&
    (c.watchdogStallMs === 0 || int(c.watchdogStallMs, MIN_WATCHDOG_STALL_MS, 600_000)) &&
    c.mqttPassword.length > 0 &&
    /^mqtts?:\/\//.test(c.mqttUrl) &&
    c.udpSourceLimit.perSocket.ratePerSecond >= 1 &&
    c.udpSourceLimit.perSocket.burst >= 1 &&
    c.udpSourceLimit.perAddress.ratePerSecond >= 1 &&
    c.udpSourceLimit.perAddress.burst >= 1 &&
    ["trace", "debug", "info", "warn", "error", "fatal"].includes(c.logLevel) &&
    (c.livekit === undefined ||
      (c.livekit.url.length > 0 && c.livekit.apiKey.length > 0 && c.livekit.apiSecret.length > 0))
  );
}

describe("the configuration loader", () => {
  it("parseConfig on 100,000 random environments: a sane config, or a ConfigError naming a variable", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.oneof(
            { weight: 6, arbitrary: fc.constantFrom(...CONFIG_VARS) },
            { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
          ),
          envValue,
          { maxKeys: 12 },
        ),
        fc.option(fc.string({ minLength: 1, maxLength: 12 }), { freq: 4 }),
        (env, password) => {
          const e: Record<string, string> =
            password === null ? { ...env } : { MQTT_PASSWORD: password, ...env };
          try {
            const c = parseConfig(e);
            tally.add("ok");
            return sane(c);
          } catch (err) {
            if (!(err instanceof ConfigError)) return false;
            tally.add(err.variable);
            return CONFIG_VARS.includes(err.variable) && err.message.startsWith(`${err.variable}: `);
          }
        },
      ),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
    assert.ok((tally.counts.get("ok") ?? 0) > 1000, JSON.stringify([...tally.counts]));
  });

  it("loadEnv on 3,000 random env files: the merged environment, or a ConfigError naming GATEWAY_ENV_FILE", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "envfuzz-"));
    const file = path.join(dir, "gateway.env");
    try {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              fc.tuple(fc.constantFrom(...CONFIG_VARS), envValue).map(([k, v]) => `${k}=${v}`),
              fc.string({ unit: "binary", maxLength: 40 }),
              fc.constantFrom("# comment", "export X=1", 'Q="multi\nline"', "=novalue", "K='unterminated"),
            ),
            { maxLength: 8 },
          ),
          (lines) => {
            writeFileSync(file, lines.join("\n"));
            try {
              const env = loadEnv({ GATEWAY_ENV_FILE: file, UDP_PORT: "8882" });
              return env.UDP_PORT === "8882";
            } catch (err) {
              return err instanceof ConfigError && err.variable === "GATEWAY_ENV_FILE";
            }
          },
        ),
        { numRuns: 3000 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
