/**
 * The first-boot order replayed with the real parts: the droplet's device-gate opener
 * (cloud-init/gateway/open-devices.sh, as shipped) waits while the broker, then the device
 * verifier, then each gateway instance of the bundle (extracted from rendered user data)
 * comes up, and opens the gate only when all answer. The bundle is installed as first
 * boot installs it (fetch-bundle.sh, from a loopback stand-in for the bucket). The broker
 * is the local one (EMQX cannot run here); the gate itself (nftables) is guard.test.ts's:
 * here opening it is a marker file. Prints how long the gate took to open after the last gateway was ready.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { runFetchBundle, serveObject } from "./bundle-server.ts";
import { ROOT, SAMPLE_BUNDLE, SAMPLE_BUNDLE_REF, SECRETS } from "./sample.ts";

const KEY = SECRETS.mqttSigningKey;

/** A TCP port nothing listens on now, on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Two consecutive free ports (the opener numbers instances from FIRST_HEALTH_PORT). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 65535 && (await portIsFree(p + 1))) return p;
  }
}
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Resolves with the first stdout line of `child` that includes `text`. */
function lineFrom(child: ChildProcess, text: string, lines: string[]): Promise<string> {
  const seen = lines.find((l) => l.includes(text));
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const onLine = (line: string) => {
      if (line.includes(text)) {
        child.off("exit", onExit);
        resolve(line);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`exited (${code}) before printing ${text}`));
    (child as ChildProcess & { lineEmitter: NodeJS.EventEmitter }).lineEmitter.on("line", onLine);
    child.once("exit", onExit);
  });
}

function track(child: ChildProcess, lines: string[]): ChildProcess {
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  rl.on("line", (l) => lines.push(l));
  Object.assign(child, { lineEmitter: rl });
  return child;
}

describe("first boot in order (local replay)", () => {
  let dir: string;
  let broker: BrokerProcess | undefined;
  const children: ChildProcess[] = [];
  let device: SimulatedDevice | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "first-boot-"));
    const objectPath = new URL(SAMPLE_BUNDLE_REF.url).pathname;
    const objects = await serveObject(objectPath, SAMPLE_BUNDLE.bytes);
    const fetched = await runFetchBundle({
      BUNDLE_URL: objects.url,
      BUNDLE_SHA256: SAMPLE_BUNDLE_REF.sha256,
      INSTALL_DIR: dir,
    });
    await objects.close();
    assert.equal(fetched.code, 0, fetched.output);
    symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
  });

  after(async () => {
    await device?.close();
    for (const c of children.reverse()) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await exited;
      }
    }
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the gate opens only once the broker, the verifier and every gateway answer", async () => {
    const brokerPort = await freePort();
    const verifierPort = await freePort();
    const firstHealthPort = await freePortPair();
    const marker = path.join(dir, "gate-opened");
    const openerLines: string[] = [];
    const opener = track(
      spawn("bash", [path.join(ROOT, "cloud-init/gateway/open-devices.sh")], {
        env: {
          PATH: process.env.PATH,
          BOOT_ENV: "/nonexistent",
          GATEWAY_ENV: "/nonexistent",
          INSTANCES: "2",
          FIRST_HEALTH_PORT: String(firstHealthPort),
          HEALTH_HOST: "127.0.0.1",
          BROKER_PORT: String(brokerPort),
          VERIFIER_URL: `http://127.0.0.1:${verifierPort}/mqtt/auth`,
          OPEN_CMD: `touch ${marker}`,
          OPEN_TIMEOUT_S: "120",
          POLL_S: "0.2",
        },
        stdio: ["ignore", "pipe", "inherit"],
      }),
      openerLines,
    );
    children.push(opener);
    const openerExit = new Promise<number | null>((r) => opener.once("exit", r));

    await lineFrom(opener, "waiting for EMQX", openerLines);
    broker = await startBroker({ port: brokerPort, deviceSigningKey: KEY });
    await lineFrom(opener, "waiting for the device verifier", openerLines);

    const verifierLines: string[] = [];
    children.push(
      track(
        spawn(process.execPath, [path.join(dir, "gateway/verifier.js")], {
          cwd: dir,
          env: {
            PATH: process.env.PATH,
            MQTT_SIGNING_KEY: KEY,
            VERIFIER_PORT: String(verifierPort),
            VERIFIER_BIND: "127.0.0.1",
          },
          stdio: ["ignore", "pipe", "inherit"],
        }),
        verifierLines,
      ),
    );
    await lineFrom(opener, "waiting for the gateways' /readyz", openerLines);

    const startGateway = (i: number): ChildProcess => {
      const lines: string[] = [];
      const child = track(
        spawn(process.execPath, [path.join(dir, "gateway/main.js")], {
          cwd: dir,
          env: {
            PATH: process.env.PATH,
            INSTANCE_ID: String(i),
            UDP_PORT: "0",
            UDP_BIND: "127.0.0.1",
            PUBLIC_HOST: "127.0.0.1",
            HEALTH_PORT: String(firstHealthPort + i - 1),
            HEALTH_BIND: "127.0.0.1",
            WORKER_COUNT: "1",
            MQTT_URL: `mqtt://127.0.0.1:${brokerPort}`,
            MQTT_PASSWORD: broker?.gatewayPassword ?? "",
          },
          stdio: ["ignore", "pipe", "inherit"],
        }),
        lines,
      );
      children.push(child);
      return child;
    };
    const gw1 = startGateway(1);
    await lineFrom(gw1, '"gateway started"', []);
    await waitReady(firstHealthPort);
    // One gateway of two ready: the gate stays shut (the opener is still polling).
    assert.equal(existsSync(marker), false, "opened with one gateway of two");
    assert.equal(opener.exitCode, null);

    const gw2 = startGateway(2);
    await lineFrom(gw2, '"gateway started"', []);
    await waitReady(firstHealthPort + 1);
    const ready = performance.now();
    assert.equal(await openerExit, 0, openerLines.join("\n"));
    const openedAfterMs = performance.now() - ready;
    assert.ok(existsSync(marker));
    assert.match(openerLines.at(-1) ?? "", /2 gateways ready: devices admitted/);
    console.log(`gate opened ${openedAfterMs.toFixed(0)} ms after the last gateway's /readyz said 200`);

    // The first device through the open gate is served at once.
    device = new SimulatedDevice({ brokerUrl: broker.url, index: 5, signingKey: KEY });
    await device.connect();
    const reply = await device.hello();
    assert.equal(reply.server, "127.0.0.1");
  });
});

/** Polls a gateway's /readyz until 200 (the gateway's own readiness, not a timer). */
async function waitReady(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`gateway on ${port} never ready`);
}
