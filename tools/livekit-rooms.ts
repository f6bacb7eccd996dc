import os from "node:os";
import { parseArgs } from "node:util";
import { buildBundle } from "../scripts/build.ts";
import { spawnGateway, stopGateway } from "./load/gateway-process.ts";
import { waitReady } from "./load/health-client.ts";
import { cpuSeconds } from "./load/stats.ts";
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
const gw = await spawnGateway({
  id: 1,
  brokerUrl: broker.url,
  brokerPassword: broker.gatewayPassword,
  workers: 2,
  env: { LIVEKIT_URL: lk.url, LIVEKIT_API_KEY: lk.apiKey, LIVEKIT_API_SECRET: lk.apiSecret },
});
const gateway = gw.process;
const base = gw.healthUrl;
const devices: SimulatedDevice[] = [];
const health = async () => (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
const metricValue = async (name: string) => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.split(" ").pop()) : 0;
};

try {
  await waitReady(base);
  await new Promise((r) => setTimeout(r, 2000));
  const pid = gateway.pid as number;
  const idle = await health();
  const baseRss = ((idle.memory as { rssBytes: number }).rssBytes ?? 0) / 2 ** 20;
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
  await stopGateway(gw);
  await broker.stop();
  await lk.stop();
}
