/**
 * Property tests (fast-check) of device MQTT messages: the parser alone, and the gateway
 * core's whole broker-message path. 100,000 inputs each; nothing throws, every rejection
 * has a known reason and is counted.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import { OpusPool } from "../src/audio/opus-pool.ts";
import {
  type DeviceMessage,
  MAX_DEVICE_MESSAGE_BYTES,
  parseDeviceMessage,
} from "../src/protocol/messages.ts";
import { newBootId } from "../src/protocol/session-id.ts";
import { announcePeer, replyTarget, startCore } from "./support/core.ts";
import { applyTextEdit, RUNS, Tally, textEdit } from "./support/fuzz.ts";
import { eventually } from "./support/stack.ts";

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
  firmwareHello(),
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

describe("Gateway.handleBrokerMessage on 100,000 mutated and random device messages", () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on("unhandledRejection", onUnhandled));
  after(() => process.off("unhandledRejection", onUnhandled));

  it("never throws; every message is dropped by reason, forwarded, handled, or answered with a session", async () => {
    const pool = await OpusPool.start({ size: 2, complexity: 5, bitrate: 24000 });
    const me = { instanceId: 1, bootId: newBootId() };
    const peer = { instanceId: 2, bootId: "peer0boot" };
    const current = new Map<string, string>(); // client id -> its live session id
    let helloReplies = 0;
    const { gateway, metrics } = startCore({
      pool,
      me,
      publish: (topic, payload) => {
        const client = replyTarget(topic);
        if (client === undefined) return;
        const m = JSON.parse(payload) as { type?: string; session_id?: string };
        if (m.type === "hello") {
          helloReplies++;
          current.set(client, m.session_id ?? "");
        }
      },
    });
    try {
      announcePeer(gateway, peer, "up");
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
