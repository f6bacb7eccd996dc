/**
 * `npm run bench:rooms`: what a LiveKit room costs one gateway instance, for each room
 * transport in one run (LIVEKIT_MEDIA=process, then rtc-node) with the ratio. Per step:
 * CPU % of one core and RSS of the gateway process plus its media process (the child
 * `voice-media`, process transport only), how much of it the gateway's main thread took (the
 * rest of the gateway's is its Opus workers and V8's helper threads) and how often that
 * thread woke from waiting, frames up per second, event-loop lag. The cost per room is what
 * the step adds above the same processes idle (measured first, with no device), and the
 * marginal cost is what a room adds from the previous step.
 *
 * Options: `--media-threads 1,2` runs the process transport once per MEDIA_THREADS value;
 * `--node-args=A --node-args=B` once per set of Node options for the gateway (e.g. GC
 * flags); `--compare-dist DIR` adds a run of the process transport from another build's
 * dist/ (its gateway bundle and media binary), to compare a change with the commit before
 * it in one run:
 *   git worktree add /tmp/base HEAD~1 && (cd /tmp/base && npm ci && npm run build)
 *   npm run bench:rooms -- --compare-dist /tmp/base/dist
 * `--opus-inline 0,32` once per OPUS_INLINE_STREAMS value (the gateway's default when not
 * given: how many sessions' codecs its main thread runs itself instead of a worker);
 * `--repeat N` measures N windows at each step and reports the median with the range;
 * `--workers N`: the gateway's Opus worker threads (2); `--cpu-prof DIR`: the gateway's V8
 * CPU profiles; `--settle-seconds` (60): unmeasured time after a step's rooms have joined,
 * before its first window. A step whose rooms are not all joined within `--join-seconds` (90) ends that
 * variant: the steps before it are printed, the shortfall named, and the exit status is 1.
 * Stopped by a signal, it kills what it started (tools/sim/exit-guard.ts).
 *
 * Devices talk `--talk` of the time (3 s bursts, staggered), streaming their microphone's
 * silence between bursts while listening, as firmware in auto mode does; `--talk 0` is
 * silence only, `--talk none` never opens the microphone (nothing sent upstream). A Go
 * load agent (media/cmd/load-agent) joins every room as an agent participant, checks that each
 * device packet it receives is one the devices sent (byte for byte: the media process
 * forwards them unchanged; rtc-node re-encodes, so its match count is 0 by design), and
 * talks back `--agent-talk` of the time with pre-encoded Opus (`--agent-frame-ms`, 20 by
 * default, as LiveKit agents send), nothing between.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { RoomServiceClient } from "livekit-server-sdk";
import { buildBundle } from "../scripts/build.ts";
import { spawnGateway, stopGateway } from "./load/gateway-process.ts";
import { waitReady } from "./load/health-client.ts";
import { scrapeMetrics, sumOf } from "./load/metrics-scrape.ts";
import { parseRoomsOptions, type Variant } from "./load/rooms-options.ts";
import {
  type AgentTotals,
  printRoomsReport,
  type Row,
  type VariantResult,
  type Window,
} from "./load/rooms-report.ts";
import { formatRoomTargets, judgeRoomTargets } from "./load/rooms-targets.ts";
import { childNamed, cpuSeconds, rssMb, voluntarySwitches } from "./load/stats.ts";
import { startBroker } from "./sim/broker-process.ts";
import { SimulatedDevice } from "./sim/device.ts";
import { loopbackAddress } from "./sim/device-identity.ts";
import { exitOnSignals, killOnExit } from "./sim/exit-guard.ts";
import { startLiveKit } from "./sim/livekit-process.ts";
import { upstreamClip } from "./sim/opus-frames.ts";

const {
  steps,
  seconds,
  talk,
  agentTalk,
  agentFrameMs,
  repeat,
  joinWaitMs: JOIN_WAIT_MS,
  settleMs: SETTLE_MS,
  workers,
  cpuProf,
  variants,
  command,
} = parseRoomsOptions();
const DROPS = "gateway_dropped_total"; // every input the gateway dropped, by reason

/** Talk phases spread evenly over the period for any number of devices (golden ratio). */
const GOLDEN = 0.6180339887498949;
const BURST_MS = 3000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LOAD_AGENT = path.join(root, ".cache/bin/load-agent");

/** Opus packets, each u16 LE length-prefixed (what load-agent reads). */
function framesFile(dir: string, name: string, frames: readonly Buffer[]): string {
  const parts: Buffer[] = [];
  for (const f of frames) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(f.length);
    parts.push(len, f);
  }
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

function prepareAgent(): { deviceFrames: string; agentFrames: string } {
  const built = spawnSync("go", ["build", "-o", LOAD_AGENT, "./cmd/load-agent"], {
    cwd: path.join(root, "media"),
    stdio: "inherit",
    env: { ...process.env, CGO_ENABLED: "0" },
  });
  if (built.status !== 0) throw new Error("building media/cmd/load-agent failed");
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-rooms-"));
  const device: Buffer[] = [];
  for (let seed = 0; seed < 8; seed++) {
    const clip = upstreamClip(seed);
    device.push(...clip.speech, clip.silence);
  }
  const require = createRequire(import.meta.url);
  const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");
  const enc = new OpusEncoder(24000, 1);
  const voice: Buffer[] = [];
  const samples = 24 * agentFrameMs;
  const pcm = Buffer.alloc(samples * 2);
  for (let k = 0; k < 1000 / agentFrameMs; k++) {
    for (let i = 0; i < samples; i++)
      pcm.writeInt16LE(Math.round(6000 * Math.sin((2 * Math.PI * 300 * (k * samples + i)) / 24000)), i * 2);
    voice.push(enc.encode(pcm));
  }
  return {
    deviceFrames: framesFile(dir, "device.opus", device),
    agentFrames: framesFile(dir, "agent.opus", voice),
  };
}

async function measure(variant: Variant, files: ReturnType<typeof prepareAgent>): Promise<VariantResult> {
  const { transport } = variant;
  const lk = await startLiveKit();
  const agent = spawn(
    LOAD_AGENT,
    [
      `-url=${lk.url}`,
      `-key=${lk.apiKey}`,
      `-device-frames=${files.deviceFrames}`,
      `-agent-frames=${files.agentFrames}`,
      `-talk=${agentTalk}`,
      `-frame-ms=${agentFrameMs}`,
    ],
    { env: { LIVEKIT_API_SECRET: lk.apiSecret }, stdio: ["pipe", "pipe", "inherit"] },
  );
  killOnExit(agent);
  let agentTotals: AgentTotals = { rooms: 0, joinFailed: 0, received: 0, matched: 0, blank: 0, sent: 0 };
  createInterface({ input: agent.stdout }).on("line", (l) => {
    agentTotals = JSON.parse(l) as AgentTotals;
  });
  const roomService = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
  const seen = new Set<string>();
  const watch = setInterval(() => {
    void roomService
      .listRooms()
      .then((rs) => {
        for (const r of rs) {
          if (seen.has(r.name)) continue;
          seen.add(r.name);
          agent.stdin.write(`${r.name}\n`);
        }
      })
      .catch(() => {});
  }, 500);
  const broker = await startBroker();
  const gw = await spawnGateway({
    id: 1,
    brokerUrl: broker.url,
    brokerPassword: broker.gatewayPassword,
    workers: workers,
    ...(variant.dist ? { dist: variant.dist } : {}),
    nodeArgs: [...variant.nodeArgs, ...(cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`] : [])],
    env: {
      LIVEKIT_URL: lk.url,
      LIVEKIT_API_KEY: lk.apiKey,
      LIVEKIT_API_SECRET: lk.apiSecret,
      LIVEKIT_MEDIA: transport,
      MEDIA_THREADS: variant.mediaThreads,
      ...(variant.opusInline === undefined ? {} : { OPUS_INLINE_STREAMS: variant.opusInline }),
    },
  });
  const base = gw.healthUrl;
  const devices: SimulatedDevice[] = [];
  const timers: NodeJS.Timeout[] = [];
  const health = async () => (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
  const scrape = () => scrapeMetrics(base);
  try {
    await waitReady(base);
    // The idle baseline settles as long as a step does: 2 s after start it read 0.6-2.3 % CPU
    // and 150-166 MB, after 60 s 0.4-0.5 % and 128-129 MB (docs/performance.md).
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const pid = gw.process.pid as number;
    const media = childNamed(pid, "voice-media");
    if (transport === "process" && media === undefined)
      throw new Error("no voice-media child of the gateway");
    const baseMediaRss = rssMb(media);
    const baseRss = rssMb(pid) + baseMediaRss;
    const lkPid = lk.process.pid as number;
    const agentPid = agent.pid as number;
    const blanks = (m: Awaited<ReturnType<typeof scrape>>) =>
      m.byLabel("gateway_agent_events_total", "event").get("agent_rtp_server_blank") ?? 0;
    const cpuNow = () => (cpuSeconds(pid) ?? 0) + (media ? (cpuSeconds(media) ?? 0) : 0);
    const idle0 = cpuNow();
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const baseCpu = ((cpuNow() - idle0) / ((performance.now() - idleT0) / 1000)) * 100;
    console.error(variant.label, `idle: ${baseCpu.toFixed(1)} % CPU, ${baseRss.toFixed(0)} MB`);
    const rows: Row[] = [];
    let stopped: string | undefined;
    for (const n of steps) {
      while (devices.length < n) {
        // One loopback address each, as in the field: from one address the per-address
        // limit (UDP_ADDRESS_RATE, 1,000 packets/s) caps the upstream at ~60 devices.
        const d = new SimulatedDevice({
          brokerUrl: broker.url,
          index: devices.length + 1,
          decodeEvery: 1000,
          udpBindAddress: loopbackAddress(devices.length + 1),
        });
        devices.push(d);
        await d.connect();
        await d.hello();
        d.listen("auto");
        // Firmware in auto mode opens its microphone at listen and streams silence between
        // bursts; then `talk` of the time in bursts, each device at its own phase.
        if (talk === null) continue;
        d.talk(0);
        if (talk === 0) continue;
        const period = BURST_MS / talk;
        const phase = ((devices.length * GOLDEN) % 1) * period;
        timers.push(
          setTimeout(() => {
            d.talk(BURST_MS);
            timers.push(setInterval(() => d.talk(BURST_MS), period));
          }, phase),
        );
      }
      const joinDeadline = Date.now() + JOIN_WAIT_MS;
      const joined = async () => (await scrape()).value("gateway_agent_rooms");
      let rooms = await joined();
      while (rooms < n && Date.now() <= joinDeadline) {
        await new Promise((r) => setTimeout(r, 250));
        rooms = await joined();
      }
      // The steps already measured are kept and printed: a machine too small for the last
      // step (rooms that never join) must not cost the run everything before it.
      if (rooms < n) {
        // Why: sessions closed meanwhile (e.g. `inactivity_timeout`: nothing sent for IDLE_TIMEOUT_MS).
        const closed = [...(await scrape()).byLabel("gateway_sessions_closed_total", "reason")];
        stopped = `only ${rooms} of ${n} rooms joined within ${JOIN_WAIT_MS / 1000} s (sessions closed so far, by reason: ${closed.map(([r, c]) => `${r} ${c}`).join(", ") || "none"}); steps from ${n} rooms on not measured`;
        console.error(variant.label, stopped);
        break;
      }
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      // `--repeat` windows back to back; the row is the one with the median CPU.
      const windows: Window[] = [];
      let stepBefore: Map<string, number> | undefined;
      for (let w = 0; w < repeat; w++) {
        // Counters scraped outside the CPU window, so their rendering is not counted in it.
        const before = await scrape();
        stepBefore ??= before.byLabel(DROPS, "reason");
        const cpu0 = cpuSeconds(pid) ?? 0;
        const mcpu0 = media ? (cpuSeconds(media) ?? 0) : 0;
        const main0 = cpuSeconds(pid, pid) ?? 0;
        const wake0 = voluntarySwitches(pid, pid) ?? 0;
        // What shares the machine with it, for the per-window line only.
        const others0 = [cpuSeconds(lkPid) ?? 0, cpuSeconds(agentPid) ?? 0, process.cpuUsage()] as const;
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, seconds * 1000));
        const wall = (performance.now() - t0) / 1000;
        const cpu = (((cpuSeconds(pid) ?? 0) - cpu0) / wall) * 100;
        const mediaCpu = media ? (((cpuSeconds(media) ?? 0) - mcpu0) / wall) * 100 : 0;
        const mainCpu = (((cpuSeconds(pid, pid) ?? 0) - main0) / wall) * 100;
        const mainWakeups = ((voluntarySwitches(pid, pid) ?? 0) - wake0) / wall;
        const lkCpu = (((cpuSeconds(lkPid) ?? 0) - others0[0]) / wall) * 100;
        const agentCpu = (((cpuSeconds(agentPid) ?? 0) - others0[1]) / wall) * 100;
        const used = process.cpuUsage(others0[2]);
        const benchCpu = ((used.user + used.system) / 1e6 / wall) * 100;
        const after = await scrape();
        const rate = (name: string) => (after.value(name) - before.value(name)) / wall;
        windows.push({
          cpu,
          mediaCpu,
          mainCpu,
          mainWakeups,
          fpsUp: rate("gateway_frames_up_total"),
          fpsDown: rate("gateway_frames_down_total"),
          dropsPerSecond:
            (sumOf(after.byLabel(DROPS, "reason")) - sumOf(before.byLabel(DROPS, "reason"))) / wall,
        });
        // Each window in the order measured, so a trend within a step (warm-up) shows.
        console.error(
          variant.label,
          `${n} rooms, window ${w + 1}/${repeat}: ${(cpu + mediaCpu).toFixed(1)} % CPU (media ${mediaCpu.toFixed(1)}, main thread ${mainCpu.toFixed(1)}, ${mainWakeups.toFixed(0)} wakeups/s); frames ${rate("gateway_frames_up_total").toFixed(0)} up/s, ${rate("gateway_frames_down_total").toFixed(0)} down/s; server silence frames ${((blanks(after) - blanks(before)) / wall).toFixed(0)}/s; beside it: LiveKit server ${lkCpu.toFixed(1)} %, load agent ${agentCpu.toFixed(1)} %, simulated devices (this process) ${benchCpu.toFixed(1)} %`,
        );
      }
      windows.sort((a, b) => a.cpu + a.mediaCpu - (b.cpu + b.mediaCpu));
      const median = windows[Math.floor(windows.length / 2)] as Window;
      const spread = windows.map((w) => w.cpu + w.mediaCpu);
      const h = await health();
      const metrics = await scrape();
      const mediaRss = rssMb(media);
      const rss = rssMb(pid) + mediaRss;
      const dropReasons = [...metrics.byLabel(DROPS, "reason")]
        .map(([reason, count]) => [reason, count - (stepBefore?.get(reason) ?? 0)] as const)
        .filter(([, count]) => count > 0)
        .map(([reason, count]) => `${reason} ${count}`)
        .join(", ");
      const previous = rows.at(-1);
      const total = median.cpu + median.mediaCpu;
      const marginal = previous
        ? (total - previous.cpu - previous.mediaCpu) / (n - previous.rooms)
        : (total - baseCpu) / n;
      const lat = h.gatewayLatencyMs as Record<string, { p50: number; p99: number } | undefined>;
      const up = lat.upstream;
      rows.push({
        ...median,
        decodeP50: metrics.quantileMs("gateway_agent_decode_seconds", "0.5"),
        decodeP99: metrics.quantileMs("gateway_agent_decode_seconds", "0.99"),
        pingP99: metrics.quantileMs("gateway_media_ping_seconds", "0.99"),
        downP50: lat.downstream?.p50 ?? Number.NaN,
        downP99: lat.downstream?.p99 ?? Number.NaN,
        agent: { ...agentTotals },
        upP50: up?.p50 ?? Number.NaN,
        upP99: up?.p99 ?? Number.NaN,
        rooms: n,
        dropReasons,
        rss,
        mediaRss,
        rssPerRoom: (rss - baseRss) / n,
        perRoom: (total - baseCpu) / n,
        cpuMin: spread[0] as number,
        cpuMax: spread.at(-1) as number,
        marginal,
        lag: Number(h.eventLoopLagP99Ms),
      });
      console.error(variant.label, JSON.stringify(rows.at(-1)));
    }
    return { baseRss, baseMediaRss, baseCpu, rows, ...(stopped === undefined ? {} : { stopped }) };
  } finally {
    clearInterval(watch);
    agent.stdin.end();
    for (const t of timers) clearTimeout(t);
    await Promise.all(devices.map((d) => d.close()));
    await stopGateway(gw);
    await broker.stop();
    await lk.stop();
  }
}

exitOnSignals();
await buildBundle();
if (cpuProf) mkdirSync(cpuProf, { recursive: true });
const files = prepareAgent();
const results = new Map<string, VariantResult>();
for (const v of variants) results.set(v.label, await measure(v, files));

// The first variant of each transport, whatever its label (`--opus-inline` adds to it).
const processLabel = variants.find((v) => v.transport === "process")?.label;
const rtcNodeLabel = variants.find((v) => v.transport === "rtc-node")?.label;
if (printRoomsReport(command, results, { process: processLabel, rtcNode: rtcNodeLabel }).length > 0)
  process.exitCode = 1;
const processResult = processLabel === undefined ? undefined : results.get(processLabel);
if (processLabel !== undefined && processResult) {
  const verdicts = judgeRoomTargets(
    processResult,
    rtcNodeLabel === undefined ? undefined : results.get(rtcNodeLabel),
  );
  console.log(
    `\n${formatRoomTargets(processLabel, verdicts, { deviceTalk: talk, agentTalk, agentFrameMs })}`,
  );
}
