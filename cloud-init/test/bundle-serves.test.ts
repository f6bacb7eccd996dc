/**
 * The gateway bundle exactly as the droplet receives it (extracted from rendered user
 * data) starts and serves a simulated device against the local broker.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { type BrokerProcess, startBroker } from "../../tools/sim/broker-process.ts";
import { SimulatedDevice } from "../../tools/sim/device.ts";
import { extractBundle } from "../render.ts";
import { ROOT, sampleGatewayUserData } from "./sample.ts";

describe("the bundle inside the gateway user data", () => {
  let dir: string;
  let broker: BrokerProcess;
  let gateway: ChildProcess;
  let device: SimulatedDevice | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "bundle-"));
    extractBundle(sampleGatewayUserData(), dir);
    // `npm ci --omit=dev` on the droplet installs what the pruned lockfile names; here the
    // project's node_modules holds the same versions.
    symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
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
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts from gateway/main.js and echoes a device's voice", async () => {
    gateway = spawn(process.execPath, [path.join(dir, "gateway/main.js")], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
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
});
