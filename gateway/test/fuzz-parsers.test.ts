/**
 * Property tests (fast-check) of the parsers that take text from outside: device MQTT
 * messages (the parser alone, and the gateway core's whole broker-message path), the
 * configuration loader, and the device verifier's request handling. 100,000+ inputs each;
 * nothing throws, every rejection has a known reason and is counted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { AgentFactory } from "../src/agent/agent-bridge.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import { deviceSignature } from "../src/auth/device-credentials.ts";
import { decideAuth } from "../src/auth/verifier-server.ts";
import { ConfigError, type GatewayConfig, loadEnv, parseConfig } from "../src/config.ts";
import { createLogger } from "../src/ops/log.ts";
import { GatewayMetrics } from "../src/ops/metrics.ts";
import {
  type DeviceMessage,
  MAX_DEVICE_MESSAGE_BYTES,
  parseDeviceMessage,
} from "../src/protocol/messages.ts";
import { newBootId } from "../src/protocol/session-id.ts";
import { Gateway } from "../src/session/gateway.ts";
import { eventually } from "./support/stack.ts";

const RUNS = 100_000;

const REJECTIONS = new Set([
  "oversized",
  "malformed_json",
  "not_object",
  "unknown_type",
  "hello_version",
  "bad_hello",
  "bad_field",
]);

/** What a parsed message may look like: exactly the types messages.ts promises. */
function wellTyped(m: DeviceMessage): boolean {
  const sid = (s: unknown) => s === undefined || typeof s === "string";
  switch (m.type) {
    case "hello":
      return (
        [8000, 12000, 16000, 24000, 48000].includes(m.audio.sampleRate) &&
        m.audio.channels === 1 &&
        [10, 20, 40, 60, 80, 100, 120].includes(m.audio.frameDurationMs) &&
        typeof m.features.mcp === "boolean" &&
        typeof m.features.aec === "boolean"
      );
    case "listen":
      return (
        sid(m.sessionId) &&
        ["start", "stop", "detect"].includes(m.state) &&
        (m.mode === undefined || ["auto", "manual", "realtime"].includes(m.mode)) &&
        (m.text === undefined || typeof m.text === "string")
      );
    case "abort":
      return sid(m.sessionId) && (m.reason === undefined || typeof m.reason === "string");
    case "mcp":
      return (
        sid(m.sessionId) && typeof m.payload === "object" && m.payload !== null && !Array.isArray(m.payload)
      );
    case "goodbye":
      return sid(m.sessionId);
    default:
      return false;
  }
}

class Tally {
  readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}

/** Parses, checks the result's shape, and tallies it. */
function checkParse(payload: Buffer, tally: Tally): boolean {
  const r = parseDeviceMessage(payload);
  if (r.ok) {
    tally.add(`ok:${r.message.type}`);
    return wellTyped(r.message);
  }
  tally.add(r.reason);
  return (
    REJECTIONS.has(r.reason) &&
    typeof r.detail === "string" &&
    (r.sessionId === undefined || typeof r.sessionId === "string") &&
    (r.reason !== "oversized" || payload.length > MAX_DEVICE_MESSAGE_BYTES)
  );
}

const SESSION_ID = "1-abcd1234-0123456789abcdef";
const VALID_MESSAGES: Record<string, unknown>[] = [
  {
    type: "hello",
    version: 3,
    features: { mcp: true },
    transport: "udp",
    audio_params: { format: "opus", sample_rate: 16000, channels: 1, frame_duration: 60 },
  },
  { type: "hello", version: 3, transport: "udp" },
  { session_id: SESSION_ID, type: "listen", state: "start", mode: "auto" },
  { session_id: SESSION_ID, type: "listen", state: "stop" },
  { session_id: SESSION_ID, type: "listen", state: "detect", text: "你好小智" },
  { session_id: SESSION_ID, type: "abort", reason: "wake_word_detected" },
  { session_id: SESSION_ID, type: "mcp", payload: { jsonrpc: "2.0", id: 1, result: { ok: true } } },
  { session_id: SESSION_ID, type: "goodbye" },
];
const KEYS = [
  "type",
  "version",
  "transport",
  "audio_params",
  "features",
  "session_id",
  "state",
  "mode",
  "text",
  "reason",
  "payload",
  "__proto__",
  "constructor",
];

type ObjectEdit =
  | { readonly op: "set"; readonly key: string; readonly value: unknown }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "nest"; readonly key: string; readonly inner: string; readonly value: unknown };

const objectEdit: fc.Arbitrary<ObjectEdit> = fc.oneof(
  fc.record({
    op: fc.constant("set" as const),
    key: fc.oneof(fc.constantFrom(...KEYS), fc.string()),
    value: fc.jsonValue({ maxDepth: 3 }),
  }),
  fc.record({ op: fc.constant("delete" as const), key: fc.constantFrom(...KEYS) }),
  fc.record({
    op: fc.constant("nest" as const),
    key: fc.constantFrom("audio_params", "features", "payload"),
    inner: fc.constantFrom("format", "sample_rate", "channels", "frame_duration", "mcp", "aec", "id"),
    value: fc.jsonValue({ maxDepth: 2 }),
  }),
);

type TextEdit =
  | { readonly op: "insert"; readonly at: number; readonly text: string }
  | { readonly op: "delete"; readonly at: number; readonly count: number }
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "pad"; readonly bytes: number };

const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(400),
    text: fc.string({ unit: "binary", maxLength: 4 }),
  }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(400), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat(400) }),
  fc.record({ op: fc.constant("pad" as const), bytes: fc.integer({ min: 8000, max: 9000 }) }),
);

function applyObjectEdits(
  base: Record<string, unknown>,
  edits: readonly ObjectEdit[],
): Record<string, unknown> {
  const o: Record<string, unknown> = structuredClone(base);
  for (const e of edits) {
    if (e.op === "set")
      Object.defineProperty(o, e.key, {
        value: e.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else if (e.op === "delete") delete o[e.key];
    else {
      const inner =
        typeof o[e.key] === "object" && o[e.key] !== null ? (o[e.key] as Record<string, unknown>) : {};
      inner[e.inner] = e.value;
      o[e.key] = inner;
    }
  }
  return o;
}

function applyTextEdit(text: string, e: TextEdit): string {
  switch (e.op) {
    case "insert":
      return text.slice(0, e.at % (text.length + 1)) + e.text + text.slice(e.at % (text.length + 1));
    case "delete":
      return text.slice(0, e.at % (text.length + 1)) + text.slice((e.at % (text.length + 1)) + e.count);
    case "truncate":
      return text.slice(0, e.at % (text.length + 1));
    case "pad":
      return text.replace(/}$/, `,"pad":"${"x".repeat(e.bytes)}"}`);
  }
}

/** A valid message mutated: object edits (types, keys, nesting), then maybe text edits. */
const mutatedMessage = fc
  .tuple(
    fc.nat(VALID_MESSAGES.length - 1),
    fc.array(objectEdit, { maxLength: 3 }),
    fc.array(textEdit, { maxLength: 2 }),
  )
  .map(([i, edits, texts]) => {
    let text = JSON.stringify(applyObjectEdits(VALID_MESSAGES[i] as Record<string, unknown>, edits));
    for (const t of texts) text = applyTextEdit(text, t);
    return Buffer.from(text, "utf8");
  });

describe("parseDeviceMessage, 100,000 inputs of each kind", () => {
  it("random strings and random bytes: never throws, every result well typed or a known rejection", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 200 }).map((s) => Buffer.from(s, "utf8")),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          fc
            .constantFrom("{", "}", "[]", "null", "0", '""', "{}", '{"type":1}', "\u0000")
            .map((s) => Buffer.from(s)),
        ),
        (payload) => checkParse(payload, tally),
      ),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
    assert.ok((tally.counts.get("malformed_json") ?? 0) > RUNS / 2);
  });

  it("random JSON values: non-objects are not_object, objects of unknown type are unknown_type", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const payload = Buffer.from(JSON.stringify(value) ?? "null", "utf8");
        const ok = checkParse(payload, tally);
        if (payload.length > MAX_DEVICE_MESSAGE_BYTES) return ok;
        const r = parseDeviceMessage(payload);
        const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
        if (!isObject) return ok && !r.ok && r.reason === "not_object";
        return ok;
      }),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
    assert.ok((tally.counts.get("not_object") ?? 0) > 0 && (tally.counts.get("unknown_type") ?? 0) > 0);
  });

  it("valid messages mutated (fields, types, nesting, bytes): never throws, every outcome counted", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(mutatedMessage, (payload) => checkParse(payload, tally)),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
    for (const k of [
      "ok:hello",
      "ok:listen",
      "ok:mcp",
      "bad_hello",
      "bad_field",
      "malformed_json",
      "oversized",
      "hello_version",
    ]) {
      assert.ok((tally.counts.get(k) ?? 0) > 0, `${k}: ${JSON.stringify([...tally.counts])}`);
    }
  });
});

const nullAgent: AgentFactory = () => ({
  pushAudio: () => {},
  onDeviceEvent: () => {},
  close: async () => {},
});

describe("Gateway.handleBrokerMessage on 100,000 mutated and random device messages", () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on("unhandledRejection", onUnhandled));
  after(() => process.off("unhandledRejection", onUnhandled));

  it("never throws; every message is dropped by reason, forwarded, handled, or answered with a session", async () => {
    const pool = await OpusPool.start({ size: 2, complexity: 5, bitrate: 24000 });
    const metrics = new GatewayMetrics(1);
    const me = { instanceId: 1, bootId: newBootId() };
    const peer = { instanceId: 2, bootId: "peer0boot" };
    const current = new Map<string, string>(); // client id -> its live session id
    let helloReplies = 0;
    const gateway = new Gateway({
      me,
      publicHost: "127.0.0.1",
      udpPort: 8881,
      idleTimeoutMs: 600_000,
      maxSessionMs: 600_000,
      pool,
      metrics,
      log: createLogger("silent", 1),
      agentFactory: nullAgent,
      ports: {
        publish: (topic, payload) => {
          if (!topic.startsWith("devices/p2p/")) return;
          const m = JSON.parse(payload) as { type?: string; session_id?: string };
          if (m.type === "hello") {
            helloReplies++;
            current.set(topic.slice(12), m.session_id ?? "");
          }
        },
        sendUdp: () => {},
      },
    });
    try {
      gateway.handleBrokerMessage(
        `gateway/presence/${peer.instanceId}`,
        Buffer.from(JSON.stringify({ bootId: peer.bootId, state: "up", udpPort: 8882 })),
      );
      const clients = Array.from({ length: 6 }, (_, i) => `GID_fuzz@@@02_00_00_00_01_0${i}@@@u${i}`);
      const topic = fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...clients).map((c) => `ingest/${c}`) },
        { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((c) => `ingest/${c}`) },
        { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
      );
      const sessionIdFor = fc.oneof(
        fc.constant("current"),
        fc.constant(`${peer.instanceId}-${peer.bootId}-0123456789abcdef`),
        fc.constant(`${me.instanceId}-${me.bootId}-0123456789abcdef`),
        fc.string({ maxLength: 30 }),
      );
      let inputs = 0;
      fc.assert(
        fc.property(
          topic,
          fc.oneof(
            mutatedMessage,
            fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? "")),
          ),
          sessionIdFor,
          (t, payload, sid) => {
            // Most messages carry the device's real current session id, so the owner's path runs.
            const clientId = t.startsWith("ingest/") ? t.slice(7) : "";
            const real = sid === "current" ? current.get(clientId) : sid;
            const text = payload.toString("utf8").replaceAll(SESSION_ID, real ?? SESSION_ID);
            inputs++;
            gateway.handleBrokerMessage(t, Buffer.from(text, "utf8"));
          },
        ),
        { numRuns: RUNS },
      );
      const sum = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
        (await c.get()).values.reduce((a, v) => a + v.value, 0);
      const handled = await sum(metrics.deviceMessages);
      const forwarded = await sum(metrics.forwarded);
      const drops = Object.entries(metrics.drops())
        .filter(([k]) => k.startsWith("mqtt_"))
        .reduce((a, [, v]) => a + v, 0);
      assert.equal(inputs, RUNS);
      assert.equal(
        drops + handled + forwarded + helloReplies,
        RUNS,
        JSON.stringify({ drops, handled, forwarded, helloReplies }),
      );
      assert.ok(handled > 0 && forwarded > 0 && helloReplies > 0);
      assert.ok(gateway.sessions.size <= clients.length);
      assert.deepEqual(unhandled, []);
    } finally {
      await gateway.drain();
      await eventually(() => pool.openStreams === 0, 10_000, "every codec stream closed");
      metrics.stop();
      await pool.shutdown();
    }
  });
});

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

describe("the device verifier's request handling", () => {
  const KEY = "fuzz-signing-key";
  const clientId = "GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34";
  const username = Buffer.from('{"ip":"198.51.100.4"}').toString("base64");
  const password = deviceSignature(KEY, clientId, username);
  const valid = { clientid: clientId, username, password };

  it("100,000 random request bodies: never throws, never allows, answers 200/400/413 with a known reason", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "")),
          fc
            .record({
              clientid: fc.string({ maxLength: 140 }),
              username: fc.base64String({ maxLength: 40 }),
              password: fc.base64String({ maxLength: 48 }),
            })
            .map((v) => Buffer.from(JSON.stringify(v))),
          fc.integer({ min: 8000, max: 9000 }).map((n) => Buffer.alloc(n, 0x20)),
        ),
        (body) => {
          const d = decideAuth(KEY, body);
          tally.add(d.reason);
          return d.result === "deny" && [200, 400, 413].includes(d.status);
        },
      ),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
  });

  it("100,000 valid credentials with one field mutated are never allowed (the unmutated ones are)", () => {
    assert.equal(decideAuth(KEY, Buffer.from(JSON.stringify(valid))).result, "allow");
    fc.assert(
      fc.property(
        fc.constantFrom("clientid", "username", "password"),
        textEdit.filter((e) => e.op !== "pad"),
        (field, edit) => {
          const mutated = { ...valid, [field]: applyTextEdit(valid[field as keyof typeof valid], edit) };
          const d = decideAuth(KEY, Buffer.from(JSON.stringify(mutated)));
          const same = mutated[field as keyof typeof valid] === valid[field as keyof typeof valid];
          return same ? d.result === "allow" : d.result === "deny";
        },
      ),
      { numRuns: RUNS },
    );
  });
});
