/**
 * `npm run bench:rooms`: what one LiveKit room costs a gateway process, from 1 to 50+
 * rooms. Starts a real LiveKit server (loopback), the broker and ONE gateway process (the
 * built bundle) with LiveKit configured, then adds devices that each stream voice into
 * their own room, and measures the gateway's RSS and CPU at each step.
 *
 *   npm run bench:rooms                          steps 1,10,25,50
 *   npm run bench:rooms -- --steps 1,25,50,75 --seconds 15
 *
 * rtc-node hands every FFI event to every Room and AudioStream listener, so CPU per room
 * could grow with the number of rooms: the table shows CPU per room at each step.
 */
import { type ChildProcess, spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildBundle } from "../scripts/build.ts";
import { cpuSeconds, freePort } from "./load/stats.ts";
import { ROOT } from "./pm2.ts";
import { startBroker } from "./sim/broker-process.ts";
import { SimulatedDevice } from "./sim/device.ts";
import { startLiveKit } from "./sim/livekit-process.ts";

const { values } = parseArgs({
  options: { steps: { type: "string", default: "1,10,25,50" }, seconds: { type: "string", default: "10" } },
});
const steps = values.steps.split(",").map(Number);
const seconds = Number(values.seconds);

await buildBundle();
const lk = await startLiveKit();
const broker = await startBroker();
const healthPort = await freePort();
const gateway: ChildProcess = spawn(process.execPath, [path.join(ROOT, "dist/gateway/main.js")], {
  env: {
    PATH: process.env.PATH,
    NODE_ENV: "production",
    INSTANCE_ID: "1",
    UDP_PORT: "0",
    UDP_BIND: "127.0.0.1",
    HEALTH_PORT: String(healthPort),
    WORKER_COUNT: "2",
    MQTT_URL: broker.url,
    MQTT_PASSWORD: broker.gatewayPassword,
    LIVEKIT_URL: lk.url,
    LIVEKIT_API_KEY: lk.apiKey,
    LIVEKIT_API_SECRET: lk.apiSecret,
    LOG_LEVEL: "warn",
  },
  stdio: ["ignore", "ignore", "inherit"],
});
const devices: SimulatedDevice[] = [];
const health = async () =>
  (await (await fetch(`http://127.0.0.1:${healthPort}/health`)).json()) as Record<string, unknown>;
const metricValue = async (name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.split(" ").pop()) : 0;
};

try {
  const deadline = Date.now() + 30_000;
  while (!(await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.ok) {
    if (Date.now() > deadline) throw new Error("gateway not ready");
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const pid = gateway.pid as number;
  const base = await health();
  const baseRss = ((base.memory as { rssBytes: number }).rssBytes ?? 0) / 2 ** 20;
  const rows: string[] = [];
  for (const n of steps) {
    while (devices.length < n) {
      const d = new SimulatedDevice({ brokerUrl: broker.url, index: devices.length + 1, decodeEvery: 1000 });
      devices.push(d);
      await d.connect();
      await d.hello();
      d.listen("auto");
    }
    const joinDeadline = Date.now() + 60_000;
    while ((await metricValue("gateway_agent_rooms")) < n) {
      if (Date.now() > joinDeadline)
        throw new Error(`only ${await metricValue("gateway_agent_rooms")} of ${n} rooms joined`);
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const d of devices) d.talk(seconds * 1000 + 5000); // continuous voice into every room
    await new Promise((r) => setTimeout(r, 2000));
    const cpu0 = cpuSeconds(pid) ?? 0;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = (((cpuSeconds(pid) ?? 0) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    const h = await health();
    const rss = ((h.memory as { rssBytes: number }).rssBytes ?? 0) / 2 ** 20;
    for (const d of devices) d.stopTalking();
    const fps = (h.framesPerSecond as { up: number }).up;
    rows.push(
      `| ${n} | ${rss.toFixed(0)} | ${((rss - baseRss) / n).toFixed(2)} | ${cpu.toFixed(1)} | ${(cpu / n).toFixed(2)} | ${fps} | ${Number(h.eventLoopLagP99Ms).toFixed(1)} |`,
    );
    console.error(rows.at(-1));
  }
  console.log(`# npm run bench:rooms -- --steps ${values.steps} --seconds ${seconds}`);
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"} x ${os.cpus().length}, Node ${process.version}; baseline RSS ${baseRss.toFixed(0)} MB (LiveKit loaded, no rooms)\n`,
  );
  console.log(
    "| rooms | gateway RSS MB | RSS per room MB | gateway CPU % | CPU % per room | frames up/s | loop lag p99 ms |",
  );
  console.log("|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(r);
} finally {
  await Promise.all(devices.map((d) => d.close()));
  await new Promise<void>((resolve) => {
    if (gateway.exitCode !== null) return resolve();
    gateway.once("exit", () => resolve());
    gateway.kill("SIGTERM");
  });
  await broker.stop();
  await lk.stop();
}
