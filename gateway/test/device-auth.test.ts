/**
 * Device authentication: the verifier EMQX calls (gateway/src/auth/) must agree byte for
 * byte with the OTA's signing scheme and with the local broker (broker/auth.go), answer
 * EMQX's HTTP contract, and refuse to run without a key.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { deviceSignature, verifyDeviceCredentials } from "../src/auth/device-credentials.ts";
import { parseVerifierConfig } from "../src/auth/verifier-config.ts";
import type { Verifier } from "../src/auth/verifier-server.ts";
import { ConfigError } from "../src/env.ts";
import { endOf } from "./support/child-exit.ts";
import { startTestVerifier, type TestVerifier } from "./support/verifier.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const VERIFIER_MAIN = path.join(ROOT, "gateway/src/auth/verifier-main.ts");

/** The shared test vector. The key is a hex-looking string, used as its raw bytes. */
const KEY = "b71c4e9a2d6f0b3e8c1a5d7f9e2b4c6a";
const CLIENT_ID = "GID_default@@@a0_85_e3_f4_49_34@@@2f1c6a52-8d0e-4b3a-9c7e-5d4f3b2a1c0e";
const USERNAME = "eyJpcCI6IjEuMi4zLjQifQ=="; // base64 of {"ip":"1.2.3.4"}
/** printf '%s' "$CLIENT_ID|$USERNAME" | openssl dgst -sha256 -hmac "$KEY" -binary | base64 */
const PASSWORD = "p0lymzB5ot3z+qQm6c5ugMAYNo4PA9xJpBoznsFiUxg=";
const VECTOR = { clientId: CLIENT_ID, username: USERNAME, password: PASSWORD };

describe("device credentials: the signing scheme", () => {
  it("the vector's password is base64(std, padded) HMAC-SHA256(key bytes, clientId|username)", () => {
    const independent = createHmac("sha256", Buffer.from(KEY, "utf8"))
      .update(Buffer.from(`${CLIENT_ID}|${USERNAME}`, "utf8"))
      .digest("base64");
    assert.equal(independent, PASSWORD);
    assert.equal(deviceSignature(KEY, CLIENT_ID, USERNAME), PASSWORD);
    assert.equal(Buffer.from(USERNAME, "base64").toString(), '{"ip":"1.2.3.4"}');
  });

  it("reproduces the signature pinned in broker/auth_test.go (TestDeviceSignatureFormat)", () => {
    assert.equal(deviceSignature("key", "G@@@M@@@U", "user"), "JIBN+BTlZjIM2OCYaDlznR8whmJRv2EHXxkawNs6FnE=");
  });

  it("accepts the vector and returns the MAC", () => {
    assert.deepEqual(verifyDeviceCredentials(KEY, VECTOR), { ok: true, mac: "a0:85:e3:f4:49:34" });
  });

  it("uses the key as raw bytes: the same key hex-decoded signs differently", () => {
    assert.equal(verifyDeviceCredentials(Buffer.from(KEY, "hex"), VECTOR).ok, false);
    assert.equal(verifyDeviceCredentials(Buffer.from(KEY, "utf8"), VECTOR).ok, true);
  });

  it("refuses wrong, truncated, padded and empty passwords", () => {
    const flipped = `${PASSWORD[0] === "A" ? "B" : "A"}${PASSWORD.slice(1)}`;
    for (const password of [flipped, PASSWORD.slice(0, -1), `${PASSWORD}=`, "", PASSWORD.toLowerCase()]) {
      assert.deepEqual(verifyDeviceCredentials(KEY, { ...VECTOR, password }), {
        ok: false,
        reason: "bad_password",
      });
    }
    // Signed with another key, or for another client id or username.
    assert.equal(
      verifyDeviceCredentials(KEY, { ...VECTOR, password: deviceSignature("other", CLIENT_ID, USERNAME) }).ok,
      false,
    );
    const otherId = CLIENT_ID.replace("a0_85", "a0_86");
    assert.equal(verifyDeviceCredentials(KEY, { ...VECTOR, clientId: otherId }).ok, false);
  });

  it("refuses the two-part form, empty parts, a bad MAC and ids no topic level can hold", () => {
    const twoPart = "GID_default@@@a0_85_e3_f4_49_34";
    const signed = (clientId: string) => ({
      clientId,
      username: USERNAME,
      password: deviceSignature(KEY, clientId, USERNAME),
    });
    const reason = (clientId: string) => {
      const r = verifyDeviceCredentials(KEY, signed(clientId));
      return r.ok ? "ok" : r.reason;
    };
    assert.equal(reason(twoPart), "client_id_not_signable");
    assert.equal(reason("GID@@@@@@uuid"), "client_id_not_signable");
    assert.equal(reason("GID@@@a0_85_e3_f4_49_34@@@"), "client_id_not_signable");
    assert.equal(reason("GID@@@a0_85_e3_f4_49_34@@@u@@@x"), "client_id_not_signable");
    assert.equal(reason("GID@@@A0_85_E3_F4_49_34@@@u"), "bad_mac");
    assert.equal(reason("GID@@@a0-85-e3-f4-49-34@@@u"), "bad_mac");
    assert.equal(reason("GID/x@@@a0_85_e3_f4_49_34@@@u"), "bad_client_id");
    assert.equal(reason("GID#@@@a0_85_e3_f4_49_34@@@u"), "bad_client_id");
    assert.equal(reason(`GID@@@a0_85_e3_f4_49_34@@@${"u".repeat(120)}`), "bad_client_id");
    assert.equal(reason(""), "bad_client_id");
  });

  it("refuses a username that is not standard padded base64 of a JSON object", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    for (const username of [
      "",
      "not base64!",
      b64('{"ip":"1.2.3.4"}').replace(/=+$/, ""), // unpadded
      b64("[1,2]"),
      b64('"text"'),
      b64("null"),
      b64("{not json"),
      "eyJ9", // {"} : not JSON
      "e31=", // non-canonical spelling of "{}"
      Buffer.from('{"ip":"1.2.3.4"}').toString("base64url"),
    ]) {
      const r = verifyDeviceCredentials(KEY, {
        clientId: CLIENT_ID,
        username,
        password: deviceSignature(KEY, CLIENT_ID, username),
      });
      assert.deepEqual(r, { ok: false, reason: "bad_username" }, username);
    }
  });
});

describe("the local broker agrees with the verifier", () => {
  let broker: BrokerProcess;
  before(async () => {
    broker = await startBroker({ deviceSigningKey: KEY });
  });
  after(async () => {
    await broker.stop();
  });

  const connack = (username: string, password: string, clientId = CLIENT_ID) =>
    new Promise<"accepted" | string>((resolve) => {
      const client = mqtt.connect(broker.url, {
        clientId,
        username,
        password,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      const done = (result: string) => {
        client.end(true);
        resolve(result);
      };
      client.once("connect", () => done("accepted"));
      client.once("error", (err) => done(`refused: ${(err as { code?: number }).code ?? err.message}`));
    });

  it("accepts the vector's exact credentials", async () => {
    assert.equal(await connack(USERNAME, PASSWORD), "accepted");
  });

  it("refuses the vector with a wrong password (not authorized)", async () => {
    assert.equal(await connack(USERNAME, deviceSignature("other", CLIENT_ID, USERNAME)), "refused: 5");
  });

  it("a SimulatedDevice with the signing key connects; its credentials pass the verifier too", async () => {
    const device = new SimulatedDevice({ brokerUrl: broker.url, index: 4242, signingKey: KEY });
    await device.connect();
    const username = Buffer.from(JSON.stringify({ ip: "127.0.0.1" })).toString("base64");
    const password = createHmac("sha256", KEY).update(`${device.clientId}|${username}`).digest("base64");
    assert.equal(verifyDeviceCredentials(KEY, { clientId: device.clientId, username, password }).ok, true);
    await device.close();
  });

  it("a SimulatedDevice signing with another key is refused", async () => {
    const device = new SimulatedDevice({ brokerUrl: broker.url, index: 4243, signingKey: "not-the-key" });
    await assert.rejects(device.connect());
    await device.close();
  });
});

describe("the verifier's HTTP contract (what EMQX calls)", () => {
  let server: TestVerifier;
  let verifier: Verifier;
  let url: string;
  before(async () => {
    server = await startTestVerifier(KEY);
    ({ verifier, url } = server);
  });
  after(async () => {
    await server.close();
  });

  const post = (body: string | Buffer, pathName?: string) => server.post(body, pathName);
  const auth = (c: { clientId: string; username: string; password: string }) =>
    post(JSON.stringify({ clientid: c.clientId, username: c.username, password: c.password }));

  it("allows the vector", async () => {
    assert.deepEqual(await auth(VECTOR), { status: 200, body: { result: "allow" } });
  });

  it("denies a wrong password", async () => {
    assert.deepEqual(await auth({ ...VECTOR, password: PASSWORD.replace(/^./, "x") }), {
      status: 200,
      body: { result: "deny" },
    });
  });

  it("denies the two-part client id, even correctly signed", async () => {
    const clientId = "GID_default@@@a0_85_e3_f4_49_34";
    assert.deepEqual(
      await auth({ clientId, username: USERNAME, password: deviceSignature(KEY, clientId, USERNAME) }),
      {
        status: 200,
        body: { result: "deny" },
      },
    );
  });

  it("answers a malformed JSON body 400 deny, as it does a body without the three strings", async () => {
    assert.deepEqual(await post("{clientid: "), { status: 400, body: { result: "deny" } });
    assert.deepEqual(await post('["a","b"]'), { status: 400, body: { result: "deny" } });
    assert.deepEqual(await post(JSON.stringify({ clientid: CLIENT_ID, username: USERNAME })), {
      status: 400,
      body: { result: "deny" },
    });
    assert.deepEqual(await post(JSON.stringify({ clientid: 1, username: USERNAME, password: PASSWORD })), {
      status: 400,
      body: { result: "deny" },
    });
  });

  it("answers a body over 8 KiB 413 deny, and other methods and paths without allowing", async () => {
    assert.deepEqual(await post(Buffer.alloc(9000, 0x20)), { status: 413, body: { result: "deny" } });
    const get = await fetch(`${url}/mqtt/auth`);
    assert.equal(get.status, 405);
    assert.deepEqual(await get.json(), { result: "deny" });
    assert.equal((await fetch(`${url}/`)).status, 404);
  });

  it("counts every answer by reason", async () => {
    const stats = (await (await fetch(`${url}/stats`)).json()) as {
      mode: string;
      allowed: Record<string, number>;
      denied: Record<string, number>;
      refused: Record<string, number>;
    };
    assert.equal(stats.mode, "verify");
    assert.deepEqual(stats.allowed, { signed: 1 });
    assert.deepEqual(stats.denied, {
      bad_password: 1,
      client_id_not_signable: 1,
      bad_request: 4,
      request_too_large: 1,
      // The GET above: answered {"result":"deny"}, so counted like every other denial.
      method_not_allowed: 1,
    });
    // The GET of `/` above: no authentication request, refused.
    assert.deepEqual(stats.refused, { not_found: 1 });
    assert.equal(verifier.stats.total, 10);
  });
});

describe("verifier configuration", () => {
  it("requires MQTT_SIGNING_KEY unless VERIFIER_INSECURE_DEV=1, and defaults to 127.0.0.1:9100", () => {
    assert.throws(
      () => parseVerifierConfig({}),
      (e: unknown) => e instanceof ConfigError && e.variable === "MQTT_SIGNING_KEY",
    );
    assert.throws(() => parseVerifierConfig({ MQTT_SIGNING_KEY: "  " }), /MQTT_SIGNING_KEY/);
    const c = parseVerifierConfig({ MQTT_SIGNING_KEY: KEY });
    assert.deepEqual([c.bind, c.port, c.signingKey, c.insecureDev], ["127.0.0.1", 9100, KEY, false]);
    const dev = parseVerifierConfig({ VERIFIER_INSECURE_DEV: "1" });
    assert.deepEqual([dev.signingKey, dev.insecureDev], [undefined, true]);
    // A key wins over the insecure flag.
    assert.equal(
      parseVerifierConfig({ MQTT_SIGNING_KEY: KEY, VERIFIER_INSECURE_DEV: "1" }).insecureDev,
      false,
    );
    assert.throws(() => parseVerifierConfig({ VERIFIER_INSECURE_DEV: "true" }), /VERIFIER_INSECURE_DEV/);
    assert.throws(
      () => parseVerifierConfig({ MQTT_SIGNING_KEY: KEY, VERIFIER_PORT: "99999" }),
      /VERIFIER_PORT/,
    );
  });
});

describe("the verifier process", () => {
  let dir: string;
  const children: ChildProcess[] = [];
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "verifier-"));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  function start(env: Record<string, string>) {
    const child = spawn(process.execPath, ["--import", "tsx", VERIFIER_MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    const lines: Record<string, unknown>[] = [];
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
      child.emit("logline");
    });
    const exited = endOf(child).then(({ code }) => code);
    const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const check = () => {
          const hit = lines.find(pred);
          if (!hit) return;
          clearTimeout(timer);
          child.off("logline", check);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          child.off("logline", check);
          reject(
            new Error(
              `no matching log line in ${timeoutMs} ms; stdout: ${JSON.stringify(lines)} stderr: ${stderr}`,
            ),
          );
        }, timeoutMs);
        child.on("logline", check);
        check();
      });
    return { child, lines, exited, waitFor, stderr: () => stderr };
  }

  it("refuses to start without a signing key: exit 2, naming MQTT_SIGNING_KEY", async () => {
    const p = start({});
    assert.equal(await p.exited, 2);
    assert.match(p.stderr(), /device-auth: bad configuration: MQTT_SIGNING_KEY: is required/);
    assert.equal(p.lines.length, 0);
  });

  it("a bad VERIFIER_INSECURE_DEV value is a configuration error too (exit 2)", async () => {
    const p = start({ VERIFIER_INSECURE_DEV: "yes" });
    assert.equal(await p.exited, 2);
    assert.match(p.stderr(), /VERIFIER_INSECURE_DEV/);
  });

  it("reads the key from GATEWAY_ENV_FILE, serves EMQX's contract, and stops on SIGTERM", async () => {
    const envFile = path.join(dir, "gateway.env");
    writeFileSync(envFile, `MQTT_PASSWORD=x\nMQTT_SIGNING_KEY=${KEY}\nLOG_LEVEL=info\n`, { mode: 0o600 });
    const p = start({ GATEWAY_ENV_FILE: envFile, VERIFIER_PORT: "0" });
    const started = await p.waitFor((l) => l.msg === "device verifier started");
    assert.equal(started.mode, "verify");
    assert.equal(started.bind, "127.0.0.1");
    const body = JSON.stringify({ clientid: CLIENT_ID, username: USERNAME, password: PASSWORD });
    const r = await fetch(`http://127.0.0.1:${started.port}/mqtt/auth`, { method: "POST", body });
    assert.deepEqual(await r.json(), { result: "allow" });
    p.child.kill("SIGTERM");
    assert.equal(await p.exited, 0);
    assert.ok(!p.lines.some((l) => l.event === "insecure_dev"));
  });

  it("VERIFIER_INSECURE_DEV=1 without a key allows everyone and warns loudly, at start and periodically", async () => {
    const p = start({ VERIFIER_INSECURE_DEV: "1", VERIFIER_PORT: "0", VERIFIER_WARN_INTERVAL_MS: "200" });
    const started = await p.waitFor((l) => l.msg === "device verifier started");
    assert.equal(started.mode, "insecure_dev");
    await p.waitFor((l) => l.event === "insecure_dev" && l.level === 40);
    const r = await fetch(`http://127.0.0.1:${started.port}/mqtt/auth`, {
      method: "POST",
      body: JSON.stringify({ clientid: "anything", username: "", password: "" }),
    });
    assert.deepEqual(await r.json(), { result: "allow" });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const warnings = p.lines.filter((l) => l.event === "insecure_dev");
    assert.ok(warnings.length >= 3, `${warnings.length} warnings`);
    assert.match(String(warnings[0]?.msg), /^INSECURE: .*every device is allowed/);
    p.child.kill("SIGTERM");
    assert.equal(await p.exited, 0);
  });
});
