/**
 * `npm run chaos`: the on-call engineer's worst night, measured (issue 12). Starts its own
 * PM2 box (the built bundle, its ecosystem file, four instances, the local broker; the
 * fixed ports of deploy/ecosystem.ts, so no local box may be running), brings N devices into
 * realtime sessions (one 60 ms frame every 200 ms each, echoed), then injects each fault in
 * turn and prints, per scenario: devices affected, time from the fault to audio again
 * (p50/p99/max), hellos unanswered within 10 s, sessions of unaffected devices ended and
 * their frames lost, and stale sessions left.
 *
 *   npm run chaos -- --devices 100 --stop-seconds 20 --broker-down-seconds 5
 *   npm run chaos -- --only kill,stop      (spread, double, kill, stop, broker)
 *
 * The scenarios are gateway/test/support/faults.ts, shared with gateway/test/faults.test.ts.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import {
  describeFigures,
  doubleHellos,
  killInstance,
  restartBroker,
  staggeredSpread,
  stopInstance,
} from "../gateway/test/support/faults.ts";
import { Fleet } from "../gateway/test/support/fleet.ts";
import { startPm2Box } from "../gateway/test/support/pm2-box.ts";
import { exitOnSignals } from "./sim/exit-guard.ts";

const SCENARIOS = ["spread", "double", "kill", "stop", "broker"] as const;

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "100" },
    "stop-seconds": { type: "string", default: "20" },
    "broker-down-seconds": { type: "string", default: "5" },
    "spread-devices": { type: "string", default: "200" },
    "spread-interval-ms": { type: "string", default: "50" },
    trials: { type: "string", default: "100" },
    only: { type: "string", default: SCENARIOS.join(",") },
  },
});

function positive(name: string, raw: string | undefined): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`chaos: --${name} must be a positive integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

const devices = positive("devices", values.devices);
const stopMs = positive("stop-seconds", values["stop-seconds"]) * 1000;
const brokerDownMs = positive("broker-down-seconds", values["broker-down-seconds"]) * 1000;
const spreadDevices = positive("spread-devices", values["spread-devices"]);
const spreadIntervalMs = positive("spread-interval-ms", values["spread-interval-ms"]);
const trials = positive("trials", values.trials);
const only = new Set((values.only ?? "").split(",").filter(Boolean));
for (const s of only) {
  if (!(SCENARIOS as readonly string[]).includes(s)) {
    process.stderr.write(`chaos: unknown scenario ${s}; known: ${SCENARIOS.join(", ")}\n`);
    process.exit(2);
  }
}

const print = (text: string) => process.stdout.write(`${text}\n`);

/** The broker's pick (broker/shared.go): FNV-1a of the topic, modulo the member count. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Share of `runs` random fleets of `n` devices that a hash spreads within 10% of even. */
function hashSpreadOdds(n: number, instances: number, runs: number): { within: number; worst: number } {
  let within = 0;
  let worst = 0;
  const even = n / instances;
  for (let r = 0; r < runs; r++) {
    const counts = Array.from({ length: instances }, () => 0);
    for (let i = 0; i < n; i++) {
      const id = `GID_test@@@02_00_00_00_${(i & 255).toString(16).padStart(2, "0")}_01@@@${randomUUID()}`;
      const k = fnv1a(`ingest/${id}`) % instances;
      counts[k] = (counts[k] ?? 0) + 1;
    }
    const dev = Math.max(...counts.map((c) => Math.abs(c - even))) / even;
    if (dev <= 0.1) within++;
    worst = Math.max(worst, dev);
  }
  return { within: within / runs, worst };
}

const box = await startPm2Box("chaos");
let fleet: Fleet | undefined;
let failed = false;
const stop = async () => {
  await fleet?.close();
  await box.stop();
};
exitOnSignals(stop);
try {
  print(`chaos: 4 instances under PM2, ${devices} devices in realtime sessions`);
  if (only.has("spread")) {
    const spread = await staggeredSpread(box, spreadDevices, spreadIntervalMs);
    const even = spreadDevices / spread.length;
    const worst = Math.max(...spread.map((n) => Math.abs(n - even))) / even;
    print(
      `spread: ${spreadDevices} devices, one every ${spreadIntervalMs} ms: ${spread.join("/")} per instance, worst ${(100 * worst).toFixed(0)}% from even`,
    );
    const odds = hashSpreadOdds(spreadDevices, spread.length, 10_000);
    print(
      `spread by hash of random client ids, 10,000 fleets of ${spreadDevices}: within 10% of even in ${(100 * odds.within).toFixed(1)}%, worst ${(100 * odds.worst).toFixed(0)}% from even`,
    );
  }
  if (only.has("double")) {
    const r = await doubleHellos(box, box.broker.url, trials);
    print(`two quick hellos: ${r.exactlyOne}/${trials} devices with exactly one live session (${r.figures})`);
  }
  fleet = await Fleet.start(box.broker.url, devices, { reconnect: true });
  fleet.startAudio(200);
  if (only.has("kill")) print(describeFigures(await killInstance(box, fleet, 2)));
  if (only.has("stop"))
    print(describeFigures(await stopInstance(box, fleet, 3, stopMs, Math.ceil(devices / 5))));
  if (only.has("broker")) print(describeFigures(await restartBroker(box, fleet, brokerDownMs)));
} catch (err) {
  failed = true;
  process.stderr.write(`chaos: ${(err as Error).message}\n`);
} finally {
  await stop();
}
process.exit(failed ? 1 : 0);
