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
import { randomBytes, randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { sealAudioPacket } from "../gateway/src/protocol/audio-packet.ts";
import { UDP_HEADER_BYTES, writeUdpHeader } from "../gateway/src/protocol/udp-packet.ts";
import { buildBundle } from "../scripts/build.ts";
import { spawnGateway, stopGateway } from "./load/gateway-process.ts";
import { fetchHealth, waitReady } from "./load/health-client.ts";
import { cpuSeconds, percentile } from "./load/stats.ts";
import { ROOT } from "./pm2.ts";
import { type BrokerProcess, startBroker } from "./sim/broker-process.ts";
import { loopbackAddress, SimulatedDevice } from "./sim/device.ts";
import { firmwareHello } from "./sim/firmware-hello.ts";
import { FRAME_MS, upstreamClip } from "./sim/opus-frames.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "200" },
    minutes: { type: "string", default: "10" },
    hostile: { type: "string", default: "0.05" },
    instances: { type: "string", default: "4" },
    workers: { type: "string", default: "2" },
    talk: { type: "string", default: "0.3" },
    "turn-seconds": { type: "string", default: "3" },
    "warmup-seconds": { type: "string" },
    "max-rss-growth": { type: "string", default: "0.2" },
  },
});
const deviceCount = Number(values.devices);
const durationMs = Number(values.minutes) * 60_000;
const hostileRatio = Number(values.hostile);
const instanceCount = Number(values.instances);
const talkRatio = Number(values.talk);
const turnMs = Number(values["turn-seconds"]) * 1000;
const warmupMs = values["warmup-seconds"]
  ? Number(values["warmup-seconds"]) * 1000
  : Math.min(60_000, durationMs * 0.2);
const maxRssGrowth = Number(values["max-rss-growth"]);
if (!Number.isInteger(deviceCount) || deviceCount < 1)
  throw new Error("--devices must be a whole number >= 1");
if (!(durationMs > 0) || !(warmupMs >= 0) || warmupMs >= durationMs) {
  throw new Error("--minutes must be > 0 and longer than the warm-up");
}
if (!(hostileRatio >= 0) || !(talkRatio > 0 && talkRatio <= 1))
  throw new Error("--hostile >= 0, --talk in (0, 1]");

const SIGNING_KEY = randomBytes(32).toString("hex");
const RUN_DIR = path.join(ROOT, ".run/soak");

interface Instance {
  readonly id: number;
  readonly healthUrl: string;
  readonly process: ChildProcess;
  udpPort: number;
}

let broker: BrokerProcess | undefined;
const instances: Instance[] = [];
const legit: SimulatedDevice[] = [];
const hostileDevices: SimulatedDevice[] = [];
const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];
let stopping = false;

const lost = new Map<string, string>(); // client id -> how its session was lost
const hostileSent: Record<string, number> = {};
let takeoverRefused = 0;
let takeoverAccepted = 0;
/** Downstream datagrams that reached the hijacker's sockets (must stay 0). */
let hijackerHeard = 0;

function countHostile(kind: string, n = 1): void {
  hostileSent[kind] = (hostileSent[kind] ?? 0) + n;
}

async function startGateways(): Promise<void> {
  await buildBundle();
  mkdirSync(RUN_DIR, { recursive: true });
  broker = await startBroker({ deviceSigningKey: SIGNING_KEY });
  for (let id = 1; id <= instanceCount; id++) {
    const log = openSync(path.join(RUN_DIR, `gateway-${id}.log`), "w");
    const g = await spawnGateway({
      id,
      brokerUrl: broker.url,
      brokerPassword: broker.gatewayPassword,
      workers: values.workers,
      env: { LOG_LEVEL: "info" },
      stdio: ["ignore", log, log],
    });
    const child = g.process;
    closeSync(log);
    instances.push({ ...g, udpPort: 0 });
    child.once("exit", (code, signal) => {
      if (!stopping) console.error(`gateway ${id} exited (${code ?? signal}) during the soak`);
    });
  }
  await Promise.all(instances.map((i) => waitReady(i.healthUrl)));
  for (const i of instances) i.udpPort = (await fetchHealth(i.healthUrl, 3000))?.udpPort ?? 0;
}

async function startDevices(): Promise<void> {
  const clip = upstreamClip(1, 6);
  for (let start = 0; start < deviceCount; start += 25) {
    const batch: Promise<void>[] = [];
    for (let k = start; k < Math.min(deviceCount, start + 25); k++) {
      const d = new SimulatedDevice({
        brokerUrl: broker?.url ?? "",
        index: k + 1,
        signingKey: SIGNING_KEY,
        udpBindAddress: loopbackAddress(k + 1),
        clip,
        decodeEvery: 10,
      });
      legit.push(d);
      batch.push(
        d.connect().then(async () => {
          await d.hello();
          d.listen("realtime");
          d.on("server_goodbye", (reason) => {
            if (!stopping && !lost.has(d.clientId)) lost.set(d.clientId, `server goodbye (${reason})`);
          });
          d.on("mqtt_closed", () => {
            if (!stopping && !lost.has(d.clientId)) lost.set(d.clientId, "MQTT connection closed");
          });
        }),
      );
    }
    await Promise.all(batch);
  }
  // Each device talks turnMs out of every turnMs/talkRatio, at a random phase.
  const cycleMs = turnMs / talkRatio;
  for (const d of legit) {
    const first = setTimeout(() => {
      d.talk(turnMs);
      timers.push(setInterval(() => d.talk(turnMs), cycleMs));
    }, Math.random() * cycleMs);
    timers.push(first);
  }
}

async function udpFrom(address: string): Promise<Socket> {
  const s = createSocket("udp4");
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(0, process.platform === "linux" ? address : "127.0.0.1", () => resolve());
  });
  sockets.push(s);
  return s;
}

function pick<T>(list: readonly T[]): T {
  return list[randomInt(list.length)] as T;
}

/** A live legitimate device with its audio channel. */
function victim(): SimulatedDevice | undefined {
  for (let tries = 0; tries < 5; tries++) {
    const d = pick(legit);
    if (d.session) return d;
  }
  return undefined;
}

async function startHostile(): Promise<void> {
  const garbage = await udpFrom("127.1.0.2");
  const replayer = await udpFrom("127.1.0.3");
  const spoofer = await udpFrom("127.1.0.4");
  for (let k = 0; k < 4; k++) {
    const d = new SimulatedDevice({
      brokerUrl: broker?.url ?? "",
      index: 900_000 + k,
      signingKey: SIGNING_KEY,
    });
    await d.connect();
    await d.hello().catch(() => {});
    hostileDevices.push(d);
  }
  const silence = upstreamClip(1, 6).silence;
  const hijackers = await Promise.all([0, 1, 2, 3].map(() => udpFrom("127.1.0.5")));
  for (const h of hijackers) h.on("message", () => hijackerHeard++);

  const kinds: [number, () => void][] = [
    [
      30,
      () => {
        const d = randomBytes(randomInt(0, 1500));
        garbage.send(d, pick(instances).udpPort, "127.0.0.1");
        countHostile("udp_garbage");
      },
    ],
    [
      20,
      () => {
        const v = victim();
        const s = v?.session;
        if (!v || !s) return;
        const seq = Math.max(1, v.stats.framesSent - randomInt(0, 100));
        const d = sealAudioPacket(
          s.key,
          { connectionId: s.nonce.readUInt32BE(4), timestamp: 0, sequence: seq },
          silence,
        );
        replayer.send(d, s.port, s.server);
        countHostile("udp_replay");
      },
    ],
    [
      20,
      () => {
        const v = victim();
        const s = v?.session;
        if (!v || !s) return;
        // The right connection id and a newer sequence, but no key: a random payload.
        const payload = randomBytes(randomInt(20, 120));
        const d = Buffer.alloc(UDP_HEADER_BYTES + payload.length);
        writeUdpHeader(d, {
          payloadLength: payload.length,
          connectionId: s.nonce.readUInt32BE(4),
          timestamp: 0,
          sequence: v.stats.framesSent + randomInt(1, 40),
        });
        payload.copy(d, UDP_HEADER_BYTES);
        spoofer.send(d, s.port, s.server);
        countHostile("udp_spoofed_connection_id");
      },
    ],
    [
      30,
      () => {
        const h = pick(hostileDevices);
        const other = victim()?.session?.sessionId ?? "1-abcdef12-0123456789abcdef";
        const messages: [string, string][] = [
          ["mqtt_malformed", "{type: listen"],
          ["mqtt_malformed", randomBytes(randomInt(1, 200)).toString("latin1")],
          ["mqtt_not_object", pick(["[1,2,3]", "42", "null", '"hello"'])],
          ["mqtt_unknown_type", JSON.stringify({ type: "iot", session_id: other })],
          ["mqtt_oversized", JSON.stringify({ type: "listen", state: "detect", text: "x".repeat(9000) })],
          ["mqtt_bad_hello", JSON.stringify({ type: "hello", version: 2, transport: "udp" })],
          [
            "mqtt_other_session",
            JSON.stringify({ type: "listen", state: "start", mode: "auto", session_id: other }),
          ],
          ["mqtt_other_session", JSON.stringify({ type: "abort", session_id: other })],
          ["mqtt_other_session", JSON.stringify({ type: "goodbye", session_id: other })],
        ];
        const [kind, payload] = pick(messages);
        h.publishRaw(payload);
        countHostile(kind);
      },
    ],
  ];
  const totalWeight = kinds.reduce((a, [w]) => a + w, 0);
  const sendOne = () => {
    let r = randomInt(totalWeight);
    for (const [w, send] of kinds) {
      if (r < w) return send();
      r -= w;
    }
  };

  // The hostile budget: --hostile times the devices' average packet rate.
  const perSecond = hostileRatio * deviceCount * talkRatio * (1000 / FRAME_MS);
  let owed = 0;
  timers.push(
    setInterval(() => {
      owed += perSecond / 10;
      for (; owed >= 1; owed--) sendOne();
    }, 100),
  );

  // Hello floods from an authenticated hostile device.
  const hello = JSON.stringify(firmwareHello());
  timers.push(
    setInterval(() => {
      const h = pick(hostileDevices);
      for (let i = 0; i < 200; i++) h.publishRaw(hello);
      countHostile("mqtt_hello_flood", 200);
    }, 5000),
  );

  // The UDP hijack attempt: every byte value as a 1-byte payload, far ahead and just ahead.
  timers.push(
    setInterval(() => {
      const v = victim();
      const s = v?.session;
      if (!v || !s) return;
      const seen = v.stats.framesSent;
      let n = 0;
      for (const seq of [seen + 2000, seen + 1]) {
        for (let b = 0; b < 256; b++) {
          const d = Buffer.alloc(UDP_HEADER_BYTES + 1);
          writeUdpHeader(d, {
            payloadLength: 1,
            connectionId: s.nonce.readUInt32BE(4),
            timestamp: 0,
            sequence: seq,
          });
          d[UDP_HEADER_BYTES] = b;
          (hijackers[n++ % hijackers.length] as Socket).send(d, s.port, s.server);
        }
      }
      countHostile("udp_hijack_attempt", n);
    }, 10_000),
  );

  // Takeover attempts: a live device's client id with a wrong password.
  timers.push(
    setInterval(() => {
      const v = victim();
      if (!v) return;
      countHostile("mqtt_takeover_attempt");
      const c = mqtt.connect(broker?.url ?? "", {
        clientId: v.clientId,
        username: Buffer.from('{"ip":"203.0.113.66"}').toString("base64"),
        password: randomBytes(32).toString("base64"),
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      c.once("connect", () => {
        takeoverAccepted++;
        c.end(true);
      });
      c.once("error", () => {
        takeoverRefused++;
        c.end(true);
      });
    }, 5000),
  );
}

async function snapshot(): Promise<{ rss: number[]; sessions: number; drops: Record<string, number> }> {
  const healths = await Promise.all(instances.map((i) => fetchHealth(i.healthUrl, 3000)));
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
async function steadyRss(): Promise<number[]> {
  const samples: number[][] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) await new Promise((r) => setTimeout(r, 2000));
    samples.push((await snapshot()).rss);
  }
  return instances.map((_, i) =>
    percentile(
      samples.map((s) => s[i] ?? Number.NaN),
      50,
    ),
  );
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

async function main(): Promise<number> {
  console.log(
    `soak: ${deviceCount} devices, ${values.minutes} min, ${(hostileRatio * 100).toFixed(1)}% hostile, ${instanceCount} instance(s) x ${values.workers} workers, warm-up ${Math.round(warmupMs / 1000)} s`,
  );
  await startGateways();
  await startDevices();
  console.log(`${legit.length} devices in session`);
  await startHostile();
  const cpuStart = instances.map((i) => (i.process.pid ? cpuSeconds(i.process.pid) : undefined));
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;

  let startRss: number[] | undefined;
  while (elapsed() < durationMs) {
    await new Promise((r) => setTimeout(r, Math.min(10_000, Math.max(0, durationMs - elapsed()))));
    if (!startRss && elapsed() >= warmupMs) startRss = await steadyRss();
    const snap = await snapshot();
    const sent = legit.reduce((n, d) => n + d.stats.framesSent, 0);
    const recv = legit.reduce((n, d) => n + d.stats.framesReceived, 0);
    console.log(
      `[${Math.round(elapsed() / 1000)}s] sessions ${snap.sessions} | lost ${lost.size} | frames up ${sent} echoed ${recv} | hostile ${Object.values(hostileSent).reduce((a, b) => a + b, 0)} | RSS ${snap.rss.map(mb).join(" ")}`,
    );
  }
  const endRss = await steadyRss();
  const end = await snapshot();
  const seconds = elapsed() / 1000;
  const cpu = instances.map((inst, k) => {
    const before = cpuStart[k];
    const after = inst.process.pid ? cpuSeconds(inst.process.pid) : undefined;
    return before !== undefined && after !== undefined ? ((after - before) / seconds) * 100 : Number.NaN;
  });
  stopping = true;
  for (const t of timers) clearInterval(t);
  for (const d of legit) d.stopTalking();

  // A device without a session at the end lost it, whether or not it was told.
  for (const d of legit)
    if (!d.session && !lost.has(d.clientId)) lost.set(d.clientId, "no session at the end");
  const deviceErrors: Record<string, number> = {};
  for (const d of legit)
    for (const [k, v] of Object.entries(d.stats.errors)) deviceErrors[k] = (deviceErrors[k] ?? 0) + (v ?? 0);
  const sent = legit.reduce((n, d) => n + d.stats.framesSent, 0);
  const recv = legit.reduce((n, d) => n + d.stats.framesReceived, 0);
  const rtt = legit.flatMap((d) => d.stats.roundTripMs);
  const rssStart = startRss ?? endRss;
  const growth = endRss.map((r, k) => r / (rssStart[k] ?? r) - 1);
  const lostReasons: Record<string, number> = {};
  for (const why of lost.values()) lostReasons[why] = (lostReasons[why] ?? 0) + 1;

  const lines = [
    "",
    `# soak result (${new Date().toISOString()})`,
    `command: npm run soak -- ${process.argv.slice(2).join(" ")}`.trimEnd(),
    `machine: ${os.cpus()[0]?.model ?? "?"} x ${os.cpus().length}, Node ${process.version}`,
    `duration: ${seconds.toFixed(0)} s; ${deviceCount} devices; ${instanceCount} instances x ${values.workers} workers`,
    `legitimate sessions lost: ${lost.size}${lost.size ? ` ${JSON.stringify(lostReasons)}` : ""}`,
    `device errors: ${Object.keys(deviceErrors).length ? JSON.stringify(deviceErrors) : "none"}`,
    `legitimate frames: ${sent} up, ${recv} echoed back (${sent ? ((1 - recv / sent) * 100).toFixed(2) : "0"}% not echoed); round trip p50 ${percentile(rtt, 50).toFixed(1)} ms p99 ${percentile(rtt, 99).toFixed(1)} ms`,
    `hostile traffic sent: ${JSON.stringify(hostileSent)}`,
    `takeover attempts (live client id, wrong password): ${takeoverRefused} refused, ${takeoverAccepted} accepted`,
    `downstream datagrams received by the UDP hijacker: ${hijackerHeard}`,
    "gateway drops by reason (whole run):",
    ...Object.entries(end.drops)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${k.padEnd(26)} ${v}`),
    `gateway sessions at the end: ${end.sessions} (${legit.length} legitimate devices + hostile ones)`,
    "RSS per instance (median of 3 samples), after warm-up -> end:",
    ...instances.map(
      (inst, k) =>
        `  gateway ${inst.id}: ${mb(rssStart[k] ?? Number.NaN)} -> ${mb(endRss[k] ?? Number.NaN)} (${((growth[k] ?? 0) * 100).toFixed(1)}%), CPU ${(cpu[k] ?? Number.NaN).toFixed(0)}%`,
    ),
  ];
  const failures: string[] = [];
  if (lost.size > 0) failures.push(`${lost.size} legitimate session(s) lost`);
  if (takeoverAccepted > 0) failures.push(`${takeoverAccepted} takeover attempt(s) accepted by the broker`);
  if (hijackerHeard > 0) failures.push(`the UDP hijacker received ${hijackerHeard} downstream datagram(s)`);
  growth.forEach((g, k) => {
    if (!(g <= maxRssGrowth))
      failures.push(`gateway ${k + 1} RSS grew ${(g * 100).toFixed(1)}% (limit ${maxRssGrowth * 100}%)`);
  });
  lines.push(failures.length ? `FAIL: ${failures.join("; ")}` : "PASS");
  console.log(lines.join("\n"));
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  writeFileSync(
    path.join(RUN_DIR, `${stamp}.json`),
    `${JSON.stringify(
      {
        options: values,
        seconds,
        lost: Object.fromEntries(lost),
        deviceErrors,
        framesUp: sent,
        framesEchoed: recv,
        hostileSent,
        takeoverRefused,
        takeoverAccepted,
        hijackerHeard,
        drops: end.drops,
        rssStart,
        rssEnd: endRss,
        cpuPercent: cpu,
        failures,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote .run/soak/${stamp}.json; gateway logs in .run/soak/`);
  return failures.length ? 1 : 0;
}

async function cleanup(): Promise<void> {
  stopping = true;
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.close();
  await Promise.all([...legit, ...hostileDevices].map((d) => d.close()));
  await Promise.all(instances.map(stopGateway));
  await broker?.stop();
}

process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
main()
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  })
  .catch(async (err: Error) => {
    console.error(`soak failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
