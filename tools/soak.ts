/**
 * `npm run soak`: legitimate devices and hostile traffic together, for a long while.
 *
 *   npm run soak                                   200 devices, 10 minutes, 5% hostile
 *   npm run soak -- --devices 100 --minutes 2
 *   npm run soak -- --hostile 0.2 --instances 2 --workers 2
 *
 * Starts the local broker (device credentials checked with a signing key, as EMQX and the
 * verifier do in production) and the built gateway bundle, one process per instance as PM2
 * runs it. N signed devices, each on its own loopback address, talk in realtime mode (every
 * frame echoed back) in turns. Mixed in, at `--hostile` times the devices' packet rate:
 *
 *   - garbage datagrams (random bytes, random lengths) to every gateway port;
 *   - replays of devices' packets (valid, old sequence) from another address;
 *   - packets from another address with a live session's connection id and a newer
 *     sequence but no key (what someone who sniffed the connection id can send);
 *   - from authenticated hostile devices: malformed JSON, non-objects, unknown types,
 *     oversized messages, bad hellos, and listen/abort/goodbye carrying other devices'
 *     session ids;
 *   - every 5 s, a CONNECT with a live device's client id and a wrong password (a takeover
 *     attempt; the broker must refuse it);
 *   - every 5 s, a hello flood: 200 hellos at once from one authenticated hostile device
 *     (the gateway's hello budget lets a few through and counts the rest);
 *   - every 10 s, the UDP hijack attempt: from one observed datagram of a live device
 *     (connection id and sequence), 256 one-byte payloads at sequence + 2000 and 256 at
 *     sequence + 1, every byte value, from another host's four ports. The hijacker must
 *     never receive a downstream datagram, and the victim must keep its session.
 *
 * At the end it prints legitimate sessions lost (must be 0), device errors, gateway drops
 * by reason, and each instance's RSS at the start (after a warm-up) and at the end; it
 * exits 1 if a legitimate session was lost or an instance's RSS grew more than 20%.
 * Gateway logs go to .run/soak/gateway-<n>.log, the figures to .run/soak/<time>.json.
 */

import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import path from "node:path";
import { buildBundle } from "../scripts/build.ts";
import { spawnGateway, stopGateway } from "./load/gateway-process.ts";
import { fetchHealth, waitReady } from "./load/health-client.ts";
import { type HostileTraffic, startHostileTraffic } from "./load/hostile.ts";
import { parseSoakArgs, type SoakOptions } from "./load/soak-options.ts";
import { mb, soakReport } from "./load/soak-report.ts";
import { cpuSeconds, percentile } from "./load/stats.ts";
import { ROOT } from "./pm2.ts";
import { type BrokerProcess, startBroker } from "./sim/broker-process.ts";
import { SimulatedDevice } from "./sim/device.ts";
import { loopbackAddress } from "./sim/device-identity.ts";
import { exitOnSignals } from "./sim/exit-guard.ts";
import { FRAME_MS, upstreamClip } from "./sim/opus-frames.ts";

const RUN_DIR = path.join(ROOT, ".run/soak");

interface Instance {
  readonly id: number;
  readonly healthUrl: string;
  readonly process: ChildProcess;
  udpPort: number;
}

/** One soak run: what it started (released by `cleanup`) and what it saw. */
class Soak {
  readonly signingKey = randomBytes(32).toString("hex");
  broker: BrokerProcess | undefined;
  readonly instances: Instance[] = [];
  readonly legit: SimulatedDevice[] = [];
  readonly timers: NodeJS.Timeout[] = [];
  hostile: HostileTraffic | undefined;
  stopping = false;
  /** Client id -> how its session was lost. */
  readonly lost = new Map<string, string>();

  constructor(readonly o: SoakOptions) {}

  async startGateways(): Promise<void> {
    await buildBundle();
    mkdirSync(RUN_DIR, { recursive: true });
    const broker = await startBroker({ deviceSigningKey: this.signingKey });
    this.broker = broker;
    for (let id = 1; id <= this.o.instances; id++) {
      const log = openSync(path.join(RUN_DIR, `gateway-${id}.log`), "w");
      const g = await spawnGateway({
        id,
        brokerUrl: broker.url,
        brokerPassword: broker.gatewayPassword,
        workers: this.o.workers,
        env: { LOG_LEVEL: "info" },
        stdio: ["ignore", log, log],
      });
      closeSync(log);
      this.instances.push({ ...g, udpPort: 0 });
      g.process.once("exit", (code, signal) => {
        if (!this.stopping) console.error(`gateway ${id} exited (${code ?? signal}) during the soak`);
      });
    }
    await Promise.all(this.instances.map((i) => waitReady(i.healthUrl)));
    for (const i of this.instances) i.udpPort = (await fetchHealth(i.healthUrl, 3000))?.udpPort ?? 0;
  }

  async startDevices(): Promise<void> {
    const clip = upstreamClip(1, 6);
    const { devices, turnMs, talkRatio } = this.o;
    for (let start = 0; start < devices; start += 25) {
      const batch: Promise<void>[] = [];
      for (let k = start; k < Math.min(devices, start + 25); k++) {
        const d = new SimulatedDevice({
          brokerUrl: this.broker?.url ?? "",
          index: k + 1,
          signingKey: this.signingKey,
          udpBindAddress: loopbackAddress(k + 1),
          clip,
          decodeEvery: 10,
        });
        this.legit.push(d);
        batch.push(
          d.connect().then(async () => {
            await d.hello();
            d.listen("realtime");
            d.on("server_goodbye", (reason) => this.#lose(d, `server goodbye (${reason})`));
            d.on("mqtt_closed", () => this.#lose(d, "MQTT connection closed"));
          }),
        );
      }
      await Promise.all(batch);
    }
    // Each device talks turnMs out of every turnMs/talkRatio, at a random phase.
    const cycleMs = turnMs / talkRatio;
    for (const d of this.legit) {
      const first = setTimeout(() => {
        d.talk(turnMs);
        this.timers.push(setInterval(() => d.talk(turnMs), cycleMs));
      }, Math.random() * cycleMs);
      this.timers.push(first);
    }
  }

  async startHostile(): Promise<void> {
    this.hostile = await startHostileTraffic({
      brokerUrl: this.broker?.url ?? "",
      signingKey: this.signingKey,
      instances: this.instances,
      legit: this.legit,
      // --hostile times the devices' average packet rate.
      packetsPerSecond: this.o.hostileRatio * this.o.devices * this.o.talkRatio * (1000 / FRAME_MS),
    });
  }

  async snapshot(): Promise<{ rss: number[]; sessions: number; drops: Record<string, number> }> {
    const healths = await Promise.all(this.instances.map((i) => fetchHealth(i.healthUrl, 3000)));
    const drops: Record<string, number> = {};
    for (const h of healths)
      for (const [k, v] of Object.entries(h?.drops ?? {})) drops[k] = (drops[k] ?? 0) + v;
    return {
      rss: healths.map((h) => h?.memory?.rssBytes ?? Number.NaN),
      sessions: healths.reduce((n, h) => n + (h?.sessions ?? 0), 0),
      drops,
    };
  }

  /** RSS per instance: the median of three samples 2 s apart (one sample is noisy). */
  async steadyRss(): Promise<number[]> {
    const samples: number[][] = [];
    for (let k = 0; k < 3; k++) {
      if (k > 0) await new Promise((r) => setTimeout(r, 2000));
      samples.push((await this.snapshot()).rss);
    }
    return this.instances.map((_, i) =>
      percentile(
        samples.map((s) => s[i] ?? Number.NaN),
        50,
      ),
    );
  }

  async cleanup(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.hostile?.stop();
    await Promise.all(this.legit.map((d) => d.close()));
    await Promise.all(this.instances.map(stopGateway));
    await this.broker?.stop();
  }

  #lose(d: SimulatedDevice, why: string): void {
    if (!this.stopping && !this.lost.has(d.clientId)) this.lost.set(d.clientId, why);
  }
}

async function run(soak: Soak): Promise<number> {
  const o = soak.o;
  console.log(
    `soak: ${o.devices} devices, ${o.durationMs / 60_000} min, ${(o.hostileRatio * 100).toFixed(1)}% hostile, ${o.instances} instance(s) x ${o.workers} workers, warm-up ${Math.round(o.warmupMs / 1000)} s`,
  );
  await soak.startGateways();
  await soak.startDevices();
  console.log(`${soak.legit.length} devices in session`);
  await soak.startHostile();
  const { instances, legit, lost } = soak;
  const cpuStart = instances.map((i) => (i.process.pid ? cpuSeconds(i.process.pid) : undefined));
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;

  let startRss: number[] | undefined;
  while (elapsed() < o.durationMs) {
    await new Promise((r) => setTimeout(r, Math.min(10_000, Math.max(0, o.durationMs - elapsed()))));
    if (!startRss && elapsed() >= o.warmupMs) startRss = await soak.steadyRss();
    const snap = await soak.snapshot();
    const sent = legit.reduce((n, d) => n + d.stats.framesSent, 0);
    const recv = legit.reduce((n, d) => n + d.stats.framesReceived, 0);
    console.log(
      `[${Math.round(elapsed() / 1000)}s] sessions ${snap.sessions} | lost ${lost.size} | frames up ${sent} echoed ${recv} | hostile ${soak.hostile?.tally.total ?? 0} | RSS ${snap.rss.map(mb).join(" ")}`,
    );
  }
  const endRss = await soak.steadyRss();
  const end = await soak.snapshot();
  const seconds = elapsed() / 1000;
  const cpu = instances.map((inst, k) => {
    const before = cpuStart[k];
    const after = inst.process.pid ? cpuSeconds(inst.process.pid) : undefined;
    return before !== undefined && after !== undefined ? ((after - before) / seconds) * 100 : Number.NaN;
  });
  soak.stopping = true;
  for (const t of soak.timers) clearInterval(t);
  for (const d of legit) d.stopTalking();

  // A device without a session at the end lost it, whether or not it was told.
  for (const d of legit)
    if (!d.session && !lost.has(d.clientId)) lost.set(d.clientId, "no session at the end");
  const deviceErrors: Record<string, number> = {};
  for (const d of legit)
    for (const [k, v] of Object.entries(d.stats.errors)) deviceErrors[k] = (deviceErrors[k] ?? 0) + (v ?? 0);
  const hostile = soak.hostile;
  if (!hostile) throw new Error("hostile traffic never started");
  const figures = {
    options: o,
    command: `command: npm run soak -- ${process.argv.slice(2).join(" ")}`.trimEnd(),
    seconds,
    lost,
    deviceErrors,
    framesUp: legit.reduce((n, d) => n + d.stats.framesSent, 0),
    framesEchoed: legit.reduce((n, d) => n + d.stats.framesReceived, 0),
    roundTripMs: legit.flatMap((d) => d.stats.roundTripMs),
    hostile: hostile.tally,
    drops: end.drops,
    sessionsAtEnd: end.sessions,
    legitDevices: legit.length,
    instanceIds: instances.map((i) => i.id),
    rssStart: startRss ?? endRss,
    rssEnd: endRss,
    cpuPercent: cpu,
  };
  const { lines, failures } = soakReport(figures);
  console.log(lines.join("\n"));
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  writeFileSync(
    path.join(RUN_DIR, `${stamp}.json`),
    `${JSON.stringify(
      {
        ...figures,
        lost: Object.fromEntries(lost),
        roundTripMs: undefined,
        hostile: undefined,
        hostileSent: hostile.tally.sent,
        takeoverRefused: hostile.tally.takeoverRefused,
        takeoverAccepted: hostile.tally.takeoverAccepted,
        hijackerHeard: hostile.tally.hijackerHeard,
        failures,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote .run/soak/${stamp}.json; gateway logs in .run/soak/`);
  return failures.length ? 1 : 0;
}

async function main(): Promise<void> {
  let options: SoakOptions;
  try {
    options = parseSoakArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`soak: ${(err as Error).message}`);
    process.exit(2);
  }
  const soak = new Soak(options);
  exitOnSignals(() => soak.cleanup());
  let code: number;
  try {
    code = await run(soak);
  } catch (err) {
    console.error(`soak failed: ${(err as Error).stack ?? (err as Error).message}`);
    code = 1;
  }
  await soak.cleanup();
  process.exit(code);
}

void main();
