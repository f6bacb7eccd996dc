/**
 * `npm run bench`: the hot paths, each in operations per second, and the Opus pool set
 * beside a raw libopus loop on this machine (as a ratio). Prints a Markdown table, then
 * what a job to a sleeping Opus worker costs (the hand-over, and the bare wakeup).
 *
 *   npm run bench                 everything (about a minute)
 *   npm run bench -- --quick      shorter runs
 */
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { Registry, Summary } from "prom-client";
import { PcmFramer } from "../gateway/src/audio/framer.ts";
import { OpusPool } from "../gateway/src/audio/opus-pool.ts";
import { WindowedSummary } from "../gateway/src/ops/windowed-summary.ts";
import { openAudioPacket, sealAudioPacket } from "../gateway/src/protocol/audio-packet.ts";
import { parseDeviceMessage } from "../gateway/src/protocol/messages.ts";
import { parseUdpPacket } from "../gateway/src/protocol/udp-packet.ts";
import { describeMachine } from "./load/machine.ts";
import { SpeechSignal } from "./sim/speech-signal.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");
const OPUS_SET_COMPLEXITY = 4010;

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const SECONDS = values.quick ? 0.5 : 2;

interface Row {
  readonly name: string;
  readonly opsPerSec: number;
  readonly note: string;
}
const rows: Row[] = [];

/** Runs `fn` in a loop for SECONDS (after a short warm-up); returns operations per second. */
function rate(fn: () => void): number {
  const warm = performance.now() + 100;
  while (performance.now() < warm) fn();
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
  }
  return n / ((performance.now() - start) / 1000);
}

function frames(rate: number, samples: number, count: number): Buffer[] {
  const s = new SpeechSignal({ sampleRate: rate, seed: 3 });
  return Array.from({ length: count }, () => s.next(samples));
}

// ---- packet, crypto, framer, JSON -------------------------------------------------------
const key = Buffer.alloc(16, 7);
const opus = Buffer.alloc(120, 0x18);
const datagram = sealAudioPacket(key, { connectionId: 42, timestamp: 0, sequence: 1 }, opus);
let seq = 1;
rows.push({
  name: "UDP packet parse (16-byte header)",
  opsPerSec: rate(() => parseUdpPacket(datagram)),
  note: "",
});
rows.push({
  name: "seal: header + AES-128-CTR encrypt (120 B)",
  opsPerSec: rate(() => sealAudioPacket(key, { connectionId: 42, timestamp: 0, sequence: seq++ }, opus)),
  note: "fresh cipher per packet",
});
const parsed = parseUdpPacket(datagram);
if (!parsed.ok) throw new Error("bench datagram does not parse");
rows.push({
  name: "open: AES-128-CTR decrypt (120 B)",
  opsPerSec: rate(() => openAudioPacket(key, parsed.packet)),
  note: "",
});
const framer = new PcmFramer(2880);
const chunk = Buffer.alloc(960); // 20 ms at 24 kHz, as LiveKit delivers
rows.push({
  name: "framer: 20 ms chunks into 60 ms frames",
  opsPerSec: rate(() => framer.push(chunk)),
  note: "per 20 ms chunk",
});
const listen = Buffer.from(
  JSON.stringify({ session_id: "1-abcd1234-0123456789abcdef", type: "listen", state: "start", mode: "auto" }),
);
rows.push({
  name: "MQTT JSON message validate (listen)",
  opsPerSec: rate(() => parseDeviceMessage(listen)),
  note: "",
});

// ---- latency summary: prom-client's t-digests vs the log-bucket window ------------------
// Latencies spread over 0.1 ms .. 50 ms (log-uniform), as the gateway sees per datagram;
// one value repeated would flatter a t-digest.
const latencies = Array.from({ length: 4096 }, (_, i) => 1e-4 * 500 ** (((i * 2654435761) % 4096) / 4096));
const summaryConfig = { help: "bench", percentiles: [0.5, 0.95, 0.99] };
const promSummary = new Summary({
  name: "bench_prom_seconds",
  ...summaryConfig,
  maxAgeSeconds: 60,
  ageBuckets: 5,
  registers: [new Registry()],
});
const windowed = new WindowedSummary({
  name: "bench_windowed_seconds",
  ...summaryConfig,
  registers: [new Registry()],
});
let li = 0;
const promRate = rate(() => promSummary.observe(latencies[li++ & 4095] as number));
const windowedRate = rate(() => windowed.observe(latencies[li++ & 4095] as number));
rows.push({
  name: "latency summary observe: prom-client Summary",
  opsPerSec: promRate,
  note: "5 age buckets",
});
rows.push({
  name: "latency summary observe: WindowedSummary",
  opsPerSec: windowedRate,
  note: `${(windowedRate / promRate).toFixed(0)}x prom-client`,
});

// ---- Opus: raw libopus vs the pool --------------------------------------------------------
const down = frames(24000, 1440, 50);
const upEnc = new OpusEncoder(16000, 1);
const up = frames(16000, 960, 50).map((f) => upEnc.encode(f));

const complexityRows: string[] = [];
for (const complexity of [0, 3, 5, 8, 10]) {
  const enc = new OpusEncoder(24000, 1);
  enc.applyEncoderCTL(OPUS_SET_COMPLEXITY, complexity);
  enc.setBitrate(24000);
  let i = 0;
  const r = rate(() => enc.encode(down[i++ % down.length] as Buffer));
  // Quality: SNR of decode(encode(x)) against x, aligned for the codec delay.
  const dec = new OpusEncoder(24000, 1);
  const e2 = new OpusEncoder(24000, 1);
  e2.applyEncoderCTL(OPUS_SET_COMPLEXITY, complexity);
  e2.setBitrate(24000);
  const out = Buffer.concat(down.map((f) => dec.decode(e2.encode(f))));
  const ref = Buffer.concat(down);
  complexityRows.push(`| ${complexity} | ${fmt(r)} | ${snrDb(ref, out).toFixed(1)} dB |`);
  if (complexity === 5 || complexity === 10) {
    rows.push({
      name: `raw libopus encode 24 kHz 60 ms, complexity ${complexity}`,
      opsPerSec: r,
      note: "1 thread",
    });
  }
}
const rawDec = new OpusEncoder(16000, 1);
let di = 0;
const rawDecodeRate = rate(() => rawDec.decode(up[di++ % up.length] as Buffer));
rows.push({ name: "raw libopus decode 16 kHz 60 ms", opsPerSec: rawDecodeRate, note: "1 thread" });
const rawEnc = new OpusEncoder(24000, 1);
rawEnc.applyEncoderCTL(OPUS_SET_COMPLEXITY, 5);
rawEnc.setBitrate(24000);
let ei = 0;
const rawEncodeRate = rate(() => rawEnc.encode(down[ei++ % down.length] as Buffer));

/** One worker, many streams (one frame in flight each, as a session at most has), measured as throughput. */
const STREAMS = 100;
async function poolRate(kind: "encode" | "decode"): Promise<number> {
  const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  const streams = Array.from({ length: STREAMS }, () =>
    kind === "encode" ? pool.openEncoder(24000) : pool.openDecoder(16000),
  );
  const input = kind === "encode" ? down : up;
  let done = 0;
  let stop = false;
  const pump = async (s: (typeof streams)[number], offset: number) => {
    let i = offset;
    while (!stop) {
      const f = input[i++ % input.length] as Buffer;
      await (kind === "encode" ? pool.encode(s, f) : pool.decode(s, f));
      done++;
    }
  };
  const warm = streams.map((s, i) => pump(s, i));
  await new Promise((r) => setTimeout(r, 200));
  const start = performance.now();
  const before = done;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const r = (done - before) / ((performance.now() - start) / 1000);
  stop = true;
  await Promise.all(warm);
  await pool.shutdown();
  return r;
}
/**
 * What a job costs when the worker is asleep, as it mostly is at low load: CPU of the whole
 * process (every thread) per decode sent to an idle worker and awaited, less the same loop
 * decoding inline. The difference is the hand-over both ways: serialising the batch, waking
 * the worker, its reply, waking the main thread.
 */
async function idleRoundTripCpuUs(): Promise<{ pool: number; inline: number; wakeup: number }> {
  const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  const stream = pool.openDecoder(16000);
  const inlineDecoder = new OpusEncoder(16000, 1);
  const jobs = values.quick ? 100 : 400;
  const pause = () => new Promise((r) => setTimeout(r, 5));
  const measure = async (one: (f: Buffer) => unknown): Promise<number> => {
    for (let i = 0; i < 20; i++) await one(up[i % up.length] as Buffer); // warm-up
    const before = process.cpuUsage();
    for (let i = 0; i < jobs; i++) {
      await pause();
      await one(up[i % up.length] as Buffer);
    }
    const used = process.cpuUsage(before);
    return (used.user + used.system) / jobs;
  };
  const viaPool = await measure((f) => pool.decode(stream, f));
  const inline = await measure((f) => inlineDecoder.decode(f));
  const wakeup = await measure(() => undefined);
  await pool.shutdown();
  return { pool: viaPool, inline, wakeup };
}
const roundTrip = await idleRoundTripCpuUs();

const poolEncode = await poolRate("encode");
const poolDecode = await poolRate("decode");
rows.push({
  name: "pool encode, 1 worker, 100 streams",
  opsPerSec: poolEncode,
  note: `${((poolEncode / rawEncodeRate) * 100).toFixed(0)}% of raw (complexity 5)`,
});
rows.push({
  name: "pool decode, 1 worker, 100 streams",
  opsPerSec: poolDecode,
  note: `${((poolDecode / rawDecodeRate) * 100).toFixed(0)}% of raw`,
});

console.log(`# npm run bench${values.quick ? " -- --quick" : ""}`);
console.log(`machine: ${describeMachine()}\n`);
console.log("| operation | ops/s | note |\n|---|---:|---|");
for (const r of rows) console.log(`| ${r.name} | ${fmt(r.opsPerSec)} | ${r.note} |`);
console.log(
  `\nOne decode (16 kHz, 60 ms) every 5 ms, CPU of every thread per decode: through the pool to an idle worker ${roundTrip.pool.toFixed(0)} µs, inline ${roundTrip.inline.toFixed(0)} µs (the hand-over both ways: ${(roundTrip.pool - roundTrip.inline).toFixed(0)} µs); the same loop with no decode at all (the main thread's timer wakeup alone): ${roundTrip.wakeup.toFixed(0)} µs.`,
);
console.log("\nOpus encoder complexity (24 kHz mono, 60 ms, 24 kbit/s, speech-like signal):\n");
console.log("| complexity | encodes/s (1 thread) | SNR of decode(encode(x)) |\n|---:|---:|---:|");
for (const line of complexityRows) console.log(line);

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function snrDb(ref: Buffer, out: Buffer): number {
  // Opus at 24 kHz delays by 6.5 ms (156 samples) plus lookahead; search a small window.
  let best = -Infinity;
  const n = Math.min(ref.length, out.length) / 2 - 400;
  for (let lag = 0; lag < 400; lag += 4) {
    let sig = 0;
    let err = 0;
    for (let i = 1000; i < n; i++) {
      const a = ref.readInt16LE(i * 2);
      const b = out.readInt16LE((i + lag) * 2);
      sig += a * a;
      err += (a - b) * (a - b);
    }
    best = Math.max(best, 10 * Math.log10(sig / Math.max(err, 1)));
  }
  return best;
}
