/**
 * Secrets never reach a log. The gateway process (main.ts, as PM2 runs it) and the device
 * verifier run with known secret values in their env file and LOG_LEVEL=trace; they serve
 * a device (echo agent; then a real LiveKit server with webhook dispatch, whose failure
 * path logs too), take bad input, and drain. Then every byte they wrote to stdout and
 * stderr is searched for each secret, raw and in the encodings a careless log line would
 * use: none may appear.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { deviceSignature } from "../src/auth/device-credentials.ts";
import { endOf } from "./support/child-exit.ts";
import { eventually } from "./support/stack.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const secret = (label: string) => `${label}-${randomBytes(18).toString("base64url")}`;

const MQTT_PASSWORD = secret("mqttpw");
const SIGNING_KEY = secret("signkey");
const WEBHOOK_TOKEN = secret("hooktoken");

/** A process whose stdout and stderr are kept, with a way to wait for a log line. */
class Logged {
  readonly child: ChildProcess;
  output = "";
  readonly exited: Promise<number | null>;

  constructor(script: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, script)], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (d: Buffer) => {
      this.output += d.toString("utf8");
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
    this.exited = endOf(this.child).then(({ code }) => code);
  }

  lines(): Record<string, unknown>[] {
    return this.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  }

  async waitFor(pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 20_000) {
    await eventually(
      () => this.lines().some(pred),
      timeoutMs,
      `${what}; output so far:\n${this.output.slice(-2000)}`,
    );
    return this.lines().find(pred) as Record<string, unknown>;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    return this.exited;
  }
}

describe("secrets never reach the logs", () => {
  let dir: string;
  let broker: BrokerProcess;
  let lk: LiveKitProcess;
  let webhook: Server;
  let webhookUrl: string;
  const webhookAuth: string[] = [];
  const processes: Logged[] = [];
  /** Session keys handed to devices: secrets of their own. */
  const sessionKeys: string[] = [];
  const devicePasswords: string[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "secrets-"));
    broker = await startBroker({ gatewayPassword: MQTT_PASSWORD, deviceSigningKey: SIGNING_KEY });
    lk = await startLiveKit();
    // The agent webhook: the first dispatch succeeds, every later one fails (500).
    webhook = createServer((req, res) => {
      webhookAuth.push(req.headers.authorization ?? "");
      req.resume();
      req.on("end", () => {
        res.writeHead(webhookAuth.length === 1 ? 200 : 500);
        res.end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", () => resolve()));
    const address = webhook.address();
    webhookUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/dispatch`;
  });

  after(async () => {
    for (const p of processes) await p.stop();
    await new Promise<void>((resolve) => webhook.close(() => resolve()));
    await lk?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function envFile(name: string, lines: string[]): string {
    const file = path.join(dir, name);
    writeFileSync(file, [...lines, ""].join("\n"), { mode: 0o600 });
    return file;
  }

  function gateway(instanceId: number, file: string): Logged {
    const g = new Logged("gateway/src/main.ts", {
      GATEWAY_ENV_FILE: file,
      INSTANCE_ID: String(instanceId),
      UDP_PORT: "0",
      UDP_BIND: "127.0.0.1",
      HEALTH_PORT: "0",
      WORKER_COUNT: "1",
      TOTALS_INTERVAL_MS: "300",
    });
    processes.push(g);
    return g;
  }

  async function signedDevice(index: number): Promise<SimulatedDevice> {
    const d = new SimulatedDevice({ brokerUrl: broker.url, index, signingKey: SIGNING_KEY });
    await d.connect();
    return d;
  }

  it("the gateway with the echo agent: a device served, bad input dropped, drained", async () => {
    const file = envFile("echo.env", [
      `MQTT_URL=${broker.url}`,
      "MQTT_USERNAME=gateway",
      `MQTT_PASSWORD=${MQTT_PASSWORD}`,
      `MQTT_SIGNING_KEY=${SIGNING_KEY}`,
      "PUBLIC_HOST=127.0.0.1",
      "LOG_LEVEL=trace",
    ]);
    const g = gateway(1, file);
    const started = await g.waitFor((l) => l.msg === "gateway started", "gateway started");
    const device = await signedDevice(501);
    const reply = await device.hello();
    sessionKeys.push(reply.key.toString("hex"));
    device.listen("realtime");
    device.talk(600);
    await device.waitForAudio(5);
    device.publishRaw("{not json");
    const stranger = createSocket("udp4");
    await new Promise<void>((resolve) => stranger.bind(0, "127.0.0.1", () => resolve()));
    stranger.send(Buffer.alloc(40, 1), Number(started.udpPort), "127.0.0.1");
    await g.waitFor((l) => l.msg === "input dropped", "a drop logged");
    stranger.close();
    await g.waitFor((l) => l.msg === "totals", "totals logged");
    await device.goodbye();
    await device.close();
    assert.equal(await g.stop(), 0);
    assert.ok(g.lines().some((l) => l.msg === "drained; bye"));
  });

  it("the gateway with LiveKit and an agent webhook: a room joined, then a failed dispatch", async () => {
    const file = envFile("livekit.env", [
      `MQTT_URL=${broker.url}`,
      `MQTT_PASSWORD=${MQTT_PASSWORD}`,
      `MQTT_SIGNING_KEY=${SIGNING_KEY}`,
      `LIVEKIT_URL=${lk.url}`,
      `LIVEKIT_API_KEY=${lk.apiKey}`,
      `LIVEKIT_API_SECRET=${lk.apiSecret}`,
      `AGENT_WEBHOOK_URL=${webhookUrl}`,
      `AGENT_WEBHOOK_TOKEN=${WEBHOOK_TOKEN}`,
      "LOG_LEVEL=trace",
    ]);
    const g = gateway(2, file);
    await g.waitFor(
      (l) => l.msg === "gateway started" && l.agent === "livekit",
      "gateway started with LiveKit",
    );
    const device = await signedDevice(502);
    sessionKeys.push((await device.hello()).key.toString("hex"));
    device.listen("auto");
    device.talk(600);
    await eventually(() => webhookAuth.length === 1, 15_000, "the agent dispatched");
    assert.equal(webhookAuth[0], `Bearer ${WEBHOOK_TOKEN}`); // the token did reach its one place
    // A second hello: the dispatch fails, the session ends, and the failure is logged.
    const second = await device.hello();
    sessionKeys.push(second.key.toString("hex"));
    await eventually(
      () => device.messages.some((m) => m.type === "goodbye" && m.session_id === second.sessionId),
      20_000,
      "goodbye for the session whose dispatch failed",
    );
    await g.waitFor(
      (l) => l.level === 50 && /LiveKit room setup failed/.test(String(l.msg)),
      "the failure logged",
    );
    await device.close();
    assert.equal(await g.stop(), 0);
  });

  it("the device verifier: allow and deny, then stop", async () => {
    const file = envFile("verifier.env", [
      `MQTT_PASSWORD=${MQTT_PASSWORD}`,
      `MQTT_SIGNING_KEY=${SIGNING_KEY}`,
      "LOG_LEVEL=trace",
    ]);
    const v = new Logged("gateway/src/auth/verifier-main.ts", { GATEWAY_ENV_FILE: file, VERIFIER_PORT: "0" });
    processes.push(v);
    const started = await v.waitFor((l) => l.msg === "device verifier started", "verifier started");
    const clientId = "GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34";
    const username = Buffer.from('{"ip":"198.51.100.9"}').toString("base64");
    const good = deviceSignature(SIGNING_KEY, clientId, username);
    const wrong = deviceSignature(`${SIGNING_KEY}x`, clientId, username);
    devicePasswords.push(good, wrong);
    for (const password of [good, wrong, good]) {
      const r = await fetch(`http://127.0.0.1:${started.port}/mqtt/auth`, {
        method: "POST",
        body: JSON.stringify({ clientid: clientId, username, password }),
      });
      assert.equal(r.status, 200);
    }
    await v.waitFor((l) => l.msg === "device denied", "a denial logged");
    assert.equal(await v.stop(), 0);
  });

  it("no secret, in any common encoding, is in any of their output", () => {
    const secrets: [string, string][] = [
      ["MQTT_PASSWORD", MQTT_PASSWORD],
      ["MQTT_SIGNING_KEY", SIGNING_KEY],
      ["LIVEKIT_API_SECRET", lk.apiSecret],
      ["AGENT_WEBHOOK_TOKEN", WEBHOOK_TOKEN],
      ...sessionKeys.map((k, i): [string, string] => [`session key ${i}`, k]),
      ...devicePasswords.map((p, i): [string, string] => [`device password ${i}`, p]),
    ];
    assert.equal(processes.length, 3);
    const output = processes.map((p) => p.output).join("\n");
    // The logs are not empty: the search means something.
    assert.ok(output.length > 5000, `only ${output.length} bytes of output`);
    for (const [name, value] of secrets) {
      for (const form of [
        value,
        Buffer.from(value).toString("base64"),
        Buffer.from(value).toString("hex"),
        encodeURIComponent(value),
        JSON.stringify(value).slice(1, -1),
      ]) {
        assert.ok(
          !output.includes(form),
          `${name} appears in the output (as ${JSON.stringify(form.slice(0, 12))}...)`,
        );
      }
      // The session key as bytes, base64: how a Buffer would be logged by hand.
      if (/^[0-9a-f]{32}$/.test(value)) {
        assert.ok(!output.includes(Buffer.from(value, "hex").toString("base64")), `${name} (base64 bytes)`);
      }
    }
  });
});
