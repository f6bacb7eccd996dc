/**
 * `npm run loadtest`: ramps simulated devices up in steps, holds each step, and reports
 * hello latency, round trip (upstream -> gateway -> echo agent -> downstream), loss and
 * reordering, and per gateway instance sessions, CPU, RSS, event-loop lag and worker use.
 *
 *   npm run loadtest                                  steps 100,250,500,1000; 4 instances
 *   npm run loadtest -- --steps 50 --instances 1 --step-seconds 20
 *   npm run loadtest -- --broker mqtt://h:1883 --health http://h:9001,http://h:9002 --broker-password ...
 *
 * By default it starts its own broker and gateway processes (the built bundle, one
 * process per instance, exactly as PM2 runs them) on free loopback ports. Devices talk in
 * realtime mode (full duplex) so every upstream frame has a measurable echo; `--talk`
 * is the share of time each device is talking. Outputs: a Markdown table on stdout,
 * and JSON + SVG under .run/loadtest/.
 */

import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { HealthBody } from "../gateway/src/ops/health-body.ts";
import { buildBundle } from "../scripts/build.ts";
import { spawnGateway, stopGateway } from "./load/gateway-process.ts";
import { fetchHealth, waitReady } from "./load/health-client.ts";
import { describeMachine } from "./load/machine.ts";
import { type InstanceFigures, markdownTable, type StepResult, svgChart } from "./load/report.ts";
import { cpuSeconds, percentile } from "./load/stats.ts";
import { ROOT } from "./pm2.ts";
import { type BrokerProcess, startBroker } from "./sim/broker-process.ts";
import { SimulatedDevice } from "./sim/device.ts";
import { loopbackAddress } from "./sim/device-identity.ts";
import { exitOnSignals } from "./sim/exit-guard.ts";
import { upstreamClip } from "./sim/opus-frames.ts";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "100,250,500,1000" },
    talk: { type: "string", default: "0.3" },
    instances: { type: "string", default: "4" },
    workers: { type: "string", default: "4" },
    "step-seconds": { type: "string", default: "30" },
    "turn-seconds": { type: "string", default: "3" },
    broker: { type: "string" },
    "broker-password": { type: "string" },
    health: { type: "string" },
    "decode-every": { type: "string", default: "10" },
  },
});
const steps = values.steps.split(",").map(Number);
const talkRatio = Number(values.talk);
const instanceCount = Number(values.instances);
const stepSeconds = Number(values["step-seconds"]);
const turnMs = Number(values["turn-seconds"]) * 1000;
if (steps.some((s) => !Number.isInteger(s) || s < 1) || !(talkRatio > 0 && talkRatio <= 1)) {
  throw new Error("--steps must be whole numbers and --talk in (0, 1]");
}

interface Instance {
  readonly id: number;
  readonly healthUrl: string;
  readonly process: ChildProcess | undefined;
}

let broker: BrokerProcess | undefined;
const instances: Instance[] = [];
const devices: SimulatedDevice[] = [];

async function startLocal(): Promise<string> {
  await buildBundle();
  broker = await startBroker();
  for (let id = 1; id <= instanceCount; id++) {
    instances.push(
      await spawnGateway({
        id,
        brokerUrl: broker.url,
        brokerPassword: broker.gatewayPassword,
        workers: values.workers,
        env: { TOTALS_INTERVAL_MS: "5000" },
      }),
    );
  }
  await Promise.all(instances.map((i) => waitReady(i.healthUrl)));
  return broker.url;
}

async function main(): Promise<void> {
  let brokerUrl: string;
  if (values.broker) {
    brokerUrl = values.broker;
    (values.health ?? "")
      .split(",")
      .filter(Boolean)
      .forEach((url, i) => {
        instances.push({ id: i + 1, healthUrl: url, process: undefined });
      });
  } else {
    brokerUrl = await startLocal();
  }
  const clip = upstreamClip(1, 6);
  const results: StepResult[] = [];
  console.error(
    `load test: steps ${steps.join(",")}, talk ${talkRatio}, ${instances.length} instance(s), ${stepSeconds} s per step`,
  );
  for (const target of steps) {
    const helloMs: number[] = [];
    while (devices.length < target) {
      const batch: Promise<void>[] = [];
      for (let k = 0; k < 25 && devices.length < target; k++) {
        const d = new SimulatedDevice({
          brokerUrl,
          index: devices.length + 1,
          // Each device on its own address, as in the field (the per-address UDP rate limit).
          udpBindAddress: loopbackAddress(devices.length + 1),
          clip,
          decodeEvery: Number(values["decode-every"]),
        });
        devices.push(d);
        batch.push(
          d.connect().then(async () => {
            const t = performance.now();
            await d.hello();
            helloMs.push(performance.now() - t);
            d.listen("realtime");
          }),
        );
      }
      await Promise.all(batch);
    }
    results.push(await holdStep(target, helloMs));
    console.log(`\n${markdownTable(results.slice(-1))}\n`);
  }
  report(results);
}

/** Runs one step: each device talks `turnMs` out of every turnMs/talkRatio, at a random phase. */
async function holdStep(target: number, helloMs: number[]): Promise<StepResult> {
  for (const d of devices) {
    d.stats.roundTripMs.length = 0;
    d.stats.framesSent = 0;
    d.stats.framesReceived = 0;
    d.stats.sequenceGaps = 0;
    d.stats.errors = {};
  }
  const cycleMs = turnMs / talkRatio;
  const timers = devices.map((d) => {
    const start = setTimeout(() => {
      d.talk(turnMs);
      timer.ref = setInterval(() => d.talk(turnMs), cycleMs);
    }, Math.random() * cycleMs);
    const timer: { ref?: NodeJS.Timeout; start: NodeJS.Timeout } = { start };
    return timer;
  });
  const cpuBefore = instances.map((i) => (i.process?.pid ? cpuSeconds(i.process.pid) : undefined));
  const genBefore = process.cpuUsage();
  const dropsBefore = await gatewayDrops();
  const t0 = performance.now();
  while (performance.now() - t0 < stepSeconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    const rtts = devices.flatMap((d) => d.stats.roundTripMs);
    process.stderr.write(
      `\r[${target} devices] ${Math.round((performance.now() - t0) / 1000)}/${stepSeconds}s  round trip p99 ${percentile(rtts, 99).toFixed(1)} ms  frames ${devices.reduce((n, d) => n + d.stats.framesReceived, 0)}   `,
    );
  }
  const elapsed = (performance.now() - t0) / 1000;
  for (const t of timers) {
    clearTimeout(t.start);
    clearInterval(t.ref);
  }
  for (const d of devices) d.stopTalking();
  // Let echoes of frames already sent arrive before counting loss.
  await new Promise((r) => setTimeout(r, 500));
  const gen = process.cpuUsage(genBefore);
  const healths = await Promise.all(instances.map((i) => fetchHealth(i.healthUrl)));
  const figures: InstanceFigures[] = instances.map((inst, k) => {
    const h = healths[k];
    const before = cpuBefore[k];
    const after = inst.process?.pid ? cpuSeconds(inst.process.pid) : undefined;
    return {
      instanceId: inst.id,
      sessions: h?.sessions ?? 0,
      cpuPercent:
        before !== undefined && after !== undefined ? ((after - before) / elapsed) * 100 : Number.NaN,
      rssMb: (h?.memory.rssBytes ?? 0) / 2 ** 20,
      eventLoopLagP99Ms: h?.eventLoopLagP99Ms ?? Number.NaN,
      inlineCodecUtilization: h?.inlineCodecUtilization ?? Number.NaN,
      workerUtilization: (h?.workers ?? []).map((w) => w.utilization),
      upstreamP99Ms: latencyOf(h, "upstream", "p99"),
      downstreamP50Ms: latencyOf(h, "downstream", "p50"),
      downstreamP99Ms: latencyOf(h, "downstream", "p99"),
    };
  });
  const dropsAfter = await gatewayDrops();
  const drops: Record<string, number> = {};
  for (const [k, v] of Object.entries(dropsAfter))
    if (v - (dropsBefore[k] ?? 0) > 0) drops[k] = v - (dropsBefore[k] ?? 0);
  const rtts = devices.flatMap((d) => d.stats.roundTripMs);
  const sent = devices.reduce((n, d) => n + d.stats.framesSent, 0);
  const recv = devices.reduce((n, d) => n + d.stats.framesReceived, 0);
  process.stderr.write("\n");
  return {
    devices: target,
    talking: Math.round(target * talkRatio),
    helloP50Ms: percentile(helloMs, 50),
    helloP99Ms: percentile(helloMs, 99),
    rttP50Ms: percentile(rtts, 50),
    rttP95Ms: percentile(rtts, 95),
    rttP99Ms: percentile(rtts, 99),
    framesSent: sent,
    framesReceived: recv,
    lossPercent: sent > 0 ? Math.max(0, (1 - recv / sent) * 100) : 0,
    reordered: devices.reduce((n, d) => n + d.stats.sequenceGaps + (d.stats.errors.udp_old_sequence ?? 0), 0),
    deviceErrors: devices.reduce(
      (n, d) => n + Object.values(d.stats.errors).reduce((a, b) => a + (b ?? 0), 0),
      0,
    ),
    gatewayDrops: drops,
    instances: figures,
    generatorCpuPercent: ((gen.user + gen.system) / 1e6 / elapsed) * 100,
  };
}

function latencyOf(
  h: HealthBody | undefined,
  direction: "upstream" | "downstream",
  q: "p50" | "p99",
): number {
  return h?.gatewayLatencyMs[direction]?.[q] ?? Number.NaN;
}

function report(results: StepResult[]): void {
  const dir = path.join(ROOT, ".run/loadtest");
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const machine = describeMachine();
  const command = `npm run loadtest -- ${process.argv.slice(2).join(" ")}`.trim();
  writeFileSync(
    path.join(dir, `${stamp}.json`),
    `${JSON.stringify({ command, machine, talkRatio, results }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, `${stamp}.svg`), svgChart(results, `${command} (${machine})`));
  console.log(`# ${command}\nmachine: ${machine}\n\n${markdownTable(results)}\n`);
  console.log(`wrote .run/loadtest/${stamp}.json and .svg`);
}

async function gatewayDrops(): Promise<Record<string, number>> {
  const total: Record<string, number> = {};
  for (const i of instances) {
    const h = await fetchHealth(i.healthUrl);
    for (const [k, v] of Object.entries(h?.drops ?? {})) total[k] = (total[k] ?? 0) + v;
  }
  return total;
}

async function cleanup(): Promise<void> {
  await Promise.all(devices.map((d) => d.close()));
  await Promise.all(instances.map(stopGateway));
  await broker?.stop();
}

exitOnSignals(cleanup);
main()
  .then(cleanup)
  .catch(async (err: Error) => {
    console.error(`load test failed: ${err.message}`);
    await cleanup();
    process.exit(1);
  });
