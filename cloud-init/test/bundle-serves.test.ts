/**
 * The gateway bundle exactly as the droplet receives it starts and serves a simulated
 * device against the local broker: the program runs under mocks, the object it uploads
 * (its `source` file) is served on loopback at the object's path, and the real
 * fetch-bundle.sh installs it with the URL's path and the SHA-256 from the rendered user data.
 * The gateway then runs on the bundle's own Node with the bundle's own node_modules
 * (nothing from this checkout: no npm, no compiler on the droplet).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { BUNDLE_OBJECT, DROPLET, runFleet } from "../../infra/test/fleet-harness.ts";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { BUNDLED_NODE, BUNDLED_PM2 } from "../bundle-runtime.ts";
import { readUserDataFiles } from "../render.ts";
import { type ObjectServer, runFetchBundle, serveObject } from "./bundle-server.ts";

describe("the bundle object that pulumi up uploads", () => {
  let dir: string;
  let objects: ObjectServer;
  let broker: BrokerProcess;
  let gateway: ChildProcess;
  let device: SimulatedDevice | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "bundle-"));
    const run = await runFleet({ gatewayReadyTimeoutMinutes: "0" });
    const object = run.find(BUNDLE_OBJECT, "bundle-object");
    const settings = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData))
      .get("/etc/voice-gateway/bootstrap.env")
      ?.content.toString();
    const value = (key: string) => settings?.match(new RegExp(`^${key}='([^']*)'$`, "m"))?.[1] ?? "";
    const url = new URL(value("BUNDLE_URL"));
    assert.equal(url.pathname, `/${object.inputs.key}`);
    objects = await serveObject(url.pathname, readFileSync(String(object.inputs.source)));
    const fetched = await runFetchBundle({
      BUNDLE_URL: objects.url,
      BUNDLE_SHA256: value("BUNDLE_SHA256"),
      INSTALL_DIR: dir,
    });
    assert.equal(fetched.code, 0, fetched.output);
    broker = await startBroker();
  });

  after(async () => {
    await device?.close();
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((r) => gateway.once("exit", r));
      gateway.kill("SIGTERM");
      await exited;
    }
    await broker?.stop();
    await objects?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts from gateway/main.js and echoes a device's voice", async () => {
    gateway = spawn(path.join(dir, BUNDLED_NODE), [path.join(dir, "gateway/main.js")], {
      cwd: dir,
      env: {
        // The bundle's node runs it (by path), and packages resolve from the bundle's
        // node_modules (it lies in a temporary folder: no checkout above it).
        PATH: "/usr/bin:/bin",
        INSTANCE_ID: "1",
        UDP_PORT: "0",
        UDP_BIND: "127.0.0.1",
        PUBLIC_HOST: "127.0.0.1",
        HEALTH_PORT: "0",
        WORKER_COUNT: "1",
        MQTT_URL: broker.url,
        MQTT_PASSWORD: broker.gatewayPassword,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      gateway.once("exit", (code) => reject(new Error(`bundle exited with ${code}`)));
      createInterface({ input: gateway.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        if (line.includes('"gateway started"')) resolve();
      });
    });
    device = new SimulatedDevice({ brokerUrl: broker.url, index: 77 });
    await device.connect();
    await device.hello();
    device.listen("realtime");
    device.talk(600);
    await device.waitForAudio(5);
    assert.deepEqual(device.stats.errors, {});
  });

  it("its PM2 runs, on its own Node, what it starts (as pm2-gateway does on the droplet)", () => {
    const home = mkdtempSync(path.join(tmpdir(), "bundle-pm2-"));
    const probe = path.join(home, "probe.cjs");
    writeFileSync(probe, "setInterval(() => {}, 60_000);\n");
    // As first boot sets it: the bundle's node/bin first; /usr/bin has another node here.
    const env = {
      PATH: `${path.join(dir, "node/bin")}:/usr/bin:/bin`,
      HOME: home,
      PM2_HOME: path.join(home, ".pm2"),
    };
    const pm2 = (...args: string[]) =>
      spawnSync(path.join(dir, BUNDLED_PM2), args, { env, encoding: "utf8", timeout: 60_000 });
    try {
      const started = pm2("start", probe, "--name", "probe", "--no-autorestart");
      assert.equal(started.status, 0, `${started.stdout}${started.stderr}`);
      const list = JSON.parse(pm2("jlist").stdout) as { name: string; pid: number }[];
      const pid = list.find((p) => p.name === "probe")?.pid ?? 0;
      assert.ok(pid > 0, JSON.stringify(list));
      assert.equal(readlinkSync(`/proc/${pid}/exe`), realpathSync(path.join(dir, BUNDLED_NODE)));
    } finally {
      pm2("kill");
      rmSync(home, { recursive: true, force: true });
    }
  });
});
