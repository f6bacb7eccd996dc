import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { PcmFramer } from "../src/audio/framer.ts";
import { resamplePcm16 } from "../src/audio/resample.ts";
import { ConfigError, describeConfig, loadEnv, parseConfig } from "../src/config.ts";
import { LogLimiter } from "../src/ops/log.ts";
import { decideOwner } from "../src/session/owner-routing.ts";

describe("PcmFramer", () => {
  it("cuts any chunking into whole 2880-byte frames and keeps the remainder", () => {
    const f = new PcmFramer(2880);
    assert.equal(f.push(Buffer.alloc(1000)).length, 0);
    const frames = f.push(Buffer.alloc(5000));
    assert.equal(frames.length, 2);
    assert.equal(f.pendingBytes, 6000 - 5760);
    const tail = f.flush();
    assert.equal(tail?.length, 2880);
    assert.equal(f.pendingBytes, 0);
  });
});

describe("resamplePcm16", () => {
  it("turns a 60 ms 16 kHz frame into a 60 ms 24 kHz frame", () => {
    assert.equal(resamplePcm16(Buffer.alloc(1920), 16000, 24000).length, 2880);
  });
});

describe("config", () => {
  const base = { MQTT_PASSWORD: "p" };

  it("has the design's defaults: UDP 8881, 4 workers, health 9000 + instance, loopback health", () => {
    const c = parseConfig({ ...base, INSTANCE_ID: "3" });
    assert.equal(c.udpPort, 8881);
    assert.equal(c.workerCount, 4);
    assert.equal(c.healthPort, 9003);
    assert.equal(c.healthBind, "127.0.0.1");
    assert.equal(c.livekit, undefined);
  });

  it("names the variable in every error", () => {
    const bad: [Record<string, string>, string][] = [
      [{}, "MQTT_PASSWORD"],
      [{ ...base, UDP_PORT: "88a" }, "UDP_PORT"],
      [{ ...base, WORKER_COUNT: "0" }, "WORKER_COUNT"],
      [{ ...base, INSTANCE_ID: "1000" }, "INSTANCE_ID"],
      [{ ...base, MQTT_URL: "http://x" }, "MQTT_URL"],
      [{ ...base, LOG_LEVEL: "loud" }, "LOG_LEVEL"],
      [{ ...base, LIVEKIT_URL: "wss://x" }, "LIVEKIT_API_KEY"],
    ];
    for (const [env, variable] of bad) {
      assert.throws(
        () => parseConfig(env),
        (err: unknown) =>
          err instanceof ConfigError && err.variable === variable && err.message.startsWith(variable),
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

describe("LogLimiter", () => {
  it("lets 5 lines a minute through per key, then reports how many it held back", () => {
    const l = new LogLimiter(5, 60_000);
    const emitted: number[] = [];
    for (let i = 0; i < 20; i++) l.run("k", (s) => emitted.push(s), 1000);
    assert.deepEqual(emitted, [0, 0, 0, 0, 0]);
    l.run("k", (s) => emitted.push(s), 62_000);
    assert.equal(emitted.at(-1), 15);
  });
});

describe("owner routing", () => {
  const me = { instanceId: 1, bootId: "aaaa1111" };
  const peers = new Map([[2, { bootId: "bbbb2222", state: "up" as const }]]);

  it("handles its own sessions, forwards a live peer's, and calls the rest stale", () => {
    assert.deepEqual(decideOwner("1-aaaa1111-0123456789abcdef", me, peers), { kind: "local" });
    assert.deepEqual(decideOwner("2-bbbb2222-0123456789abcdef", me, peers), {
      kind: "forward",
      instanceId: 2,
    });
    assert.deepEqual(decideOwner("2-cccc3333-0123456789abcdef", me, peers), { kind: "stale" }); // peer rebooted
    assert.deepEqual(decideOwner("3-dddd4444-0123456789abcdef", me, peers), { kind: "stale" }); // peer gone
    assert.deepEqual(decideOwner("1-zzzz9999-0123456789abcdef", me, peers), { kind: "stale" }); // my earlier boot
    assert.deepEqual(decideOwner("garbage", me, peers), { kind: "stale" });
  });
});

describe("RecentForwards", () => {
  it("returns what was forwarded to a peer within the window, once", async () => {
    const { RecentForwards } = await import("../src/session/recent-forwards.ts");
    const r = new RecentForwards(3000, 100);
    r.add(2, "a", "2-x-1", 1000);
    r.add(2, "b", "2-x-2", 3500);
    r.add(3, "c", "3-y-1", 3500);
    assert.deepEqual(r.takeRecent(2, 4500), [{ clientId: "b", sessionId: "2-x-2" }]);
    assert.deepEqual(r.takeRecent(2, 4500), []);
    assert.equal(r.takeRecent(3, 4500).length, 1);
  });

  it("keeps at most maxPerPeer entries", async () => {
    const { RecentForwards } = await import("../src/session/recent-forwards.ts");
    const r = new RecentForwards(60_000, 10);
    for (let i = 0; i < 50; i++) r.add(1, `c${i}`, `s${i}`, 1000 + i);
    const kept = r.takeRecent(1, 2000);
    assert.equal(kept.length, 10);
    assert.equal(kept[0]?.clientId, "c40");
  });
});
