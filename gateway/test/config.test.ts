import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { describeConfig, parseConfig } from "../src/config.ts";
import { ConfigError, loadEnv } from "../src/env.ts";
import { MIN_WATCHDOG_STALL_MS, WATCHDOG_BEAT_MS } from "../src/ops/watchdog.ts";

describe("config", () => {
  const base = { MQTT_PASSWORD: "p" };
  const liveKit = { LIVEKIT_URL: "ws://127.0.0.1:7880", LIVEKIT_API_KEY: "k", LIVEKIT_API_SECRET: "s" };

  it("has the design's defaults: UDP 8881, 4 workers, health 9000 + instance, loopback health", () => {
    const c = parseConfig({ ...base, INSTANCE_ID: "3" });
    assert.equal(c.udpPort, 8881);
    assert.equal(c.workerCount, 4);
    assert.equal(c.healthPort, 9003);
    assert.equal(c.healthBind, "127.0.0.1");
    assert.equal(c.livekit, undefined);
  });

  it("runs the media process on one thread unless MEDIA_THREADS says otherwise", () => {
    assert.equal(parseConfig({ ...base, ...liveKit }).livekit?.mediaThreads, 1);
    assert.equal(parseConfig({ ...base, ...liveKit, MEDIA_THREADS: "4" }).livekit?.mediaThreads, 4);
  });

  it("drops an aborted reply's owed turn signals for 2 s unless AGENT_LATE_SIGNAL_MS says otherwise", () => {
    assert.equal(parseConfig({ ...base, ...liveKit }).livekit?.lateSignalMs, 2000);
    assert.equal(
      parseConfig({ ...base, ...liveKit, AGENT_LATE_SIGNAL_MS: "15000" }).livekit?.lateSignalMs,
      15_000,
    );
  });

  it("runs the first 32 codec streams of each role on the main thread unless OPUS_INLINE_STREAMS says otherwise", () => {
    assert.equal(parseConfig(base).opusInlineStreams, 32);
    assert.equal(parseConfig({ ...base, OPUS_INLINE_STREAMS: "0" }).opusInlineStreams, 0);
  });

  it("names the variable in every error", () => {
    const bad: [Record<string, string>, string][] = [
      [{}, "MQTT_PASSWORD"],
      [{ ...base, UDP_PORT: "88a" }, "UDP_PORT"],
      [{ ...base, WORKER_COUNT: "0" }, "WORKER_COUNT"],
      [{ ...base, OPUS_INLINE_STREAMS: "-1" }, "OPUS_INLINE_STREAMS"],
      [{ ...base, INSTANCE_ID: "1000" }, "INSTANCE_ID"],
      [{ ...base, MQTT_URL: "http://x" }, "MQTT_URL"],
      [{ ...base, LOG_LEVEL: "loud" }, "LOG_LEVEL"],
      [{ ...base, LIVEKIT_URL: "wss://x" }, "LIVEKIT_API_KEY"],
      [{ ...base, ...liveKit, MEDIA_THREADS: "0" }, "MEDIA_THREADS"],
      [{ ...base, ...liveKit, AGENT_LATE_SIGNAL_MS: "99" }, "AGENT_LATE_SIGNAL_MS"],
      [{ ...base, ...liveKit, AGENT_LATE_SIGNAL_MS: "60001" }, "AGENT_LATE_SIGNAL_MS"],
    ];
    for (const [env, variable] of bad) {
      assert.throws(
        () => parseConfig(env),
        (err: unknown) =>
          err instanceof ConfigError && err.variable === variable && err.message.startsWith(variable),
      );
    }
  });

  it("takes WATCHDOG_STALL_MS 0 (off) or at least 4 heartbeats, and names the range for anything between", () => {
    assert.equal(parseConfig(base).watchdogStallMs, 5000);
    assert.equal(parseConfig({ ...base, WATCHDOG_STALL_MS: "0" }).watchdogStallMs, 0);
    assert.equal(
      parseConfig({ ...base, WATCHDOG_STALL_MS: String(MIN_WATCHDOG_STALL_MS) }).watchdogStallMs,
      MIN_WATCHDOG_STALL_MS,
    );
    assert.equal(MIN_WATCHDOG_STALL_MS, 4 * WATCHDOG_BEAT_MS);
    for (const v of ["1", "250", String(MIN_WATCHDOG_STALL_MS - 1), "600001", "-1", "5s"]) {
      assert.throws(
        () => parseConfig({ ...base, WATCHDOG_STALL_MS: v }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.variable === "WATCHDOG_STALL_MS" &&
          err.message.includes(`0 (off) or ${MIN_WATCHDOG_STALL_MS}..600000`),
        v,
      );
    }
  });

  it("reads the env file, and the process environment wins", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "gw-"));
    const file = path.join(dir, "gateway.env");
    writeFileSync(file, "MQTT_PASSWORD=from-file\nPUBLIC_HOST=203.0.113.9\nUDP_PORT=9999\n");
    const env = loadEnv({ GATEWAY_ENV_FILE: file, UDP_PORT: "8882" });
    const c = parseConfig(env);
    assert.equal(c.mqttPassword, "from-file");
    assert.equal(c.publicHost, "203.0.113.9");
    assert.equal(c.udpPort, 8882);
  });

  it("a missing env file is an error naming GATEWAY_ENV_FILE", () => {
    assert.throws(() => loadEnv({ GATEWAY_ENV_FILE: "/nonexistent/gateway.env" }), /GATEWAY_ENV_FILE/);
  });

  it("never shows secrets when described", () => {
    const c = parseConfig({
      ...base,
      MQTT_PASSWORD: "s3cret-mqtt",
      LIVEKIT_URL: "wss://lk",
      LIVEKIT_API_KEY: "k",
      LIVEKIT_API_SECRET: "s3cret-lk",
    });
    const text = JSON.stringify(describeConfig(c));
    assert.ok(!text.includes("s3cret"));
  });
});
