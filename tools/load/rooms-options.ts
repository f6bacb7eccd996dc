/**
 * bench:rooms' command line (tools/livekit-rooms.ts documents each option): parsed and
 * checked once, and turned into the variants to run and the command line to print.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

export interface Variant {
  readonly label: string;
  readonly transport: string;
  readonly mediaThreads: string;
  /** OPUS_INLINE_STREAMS for the gateway; the gateway's own default when absent. */
  readonly opusInline?: string;
  /** Node options for the gateway process. */
  readonly nodeArgs: readonly string[];
  /** Another build's dist/ to run instead of this tree's. */
  readonly dist?: string;
}

export interface RoomsOptions {
  readonly steps: readonly number[];
  /** Seconds per measuring window. */
  readonly seconds: number;
  /** A share of time from 0 to 1, or null: the devices never open their microphones. */
  readonly talk: number | null;
  readonly agentTalk: number;
  readonly agentFrameMs: number;
  /** Windows measured per step. */
  readonly repeat: number;
  /** How long a step waits for all its rooms to be joined before the variant stops there. */
  readonly joinWaitMs: number;
  /** Unmeasured time between a step's last room joining and its first window. */
  readonly settleMs: number;
  /** The gateway's Opus worker threads (WORKER_COUNT). */
  readonly workers: string;
  /** A folder for the gateway's V8 CPU profiles, if asked for. */
  readonly cpuProf: string | undefined;
  readonly variants: readonly Variant[];
  /** The command line as it would reproduce this run, every default spelled out. */
  readonly command: string;
}

export function parseRoomsOptions(args: string[] = process.argv.slice(2)): RoomsOptions {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: "10,25,50,100" },
      seconds: { type: "string", default: "10" },
      talk: { type: "string", default: "0.3" },
      transports: { type: "string", default: "process,rtc-node" },
      "agent-talk": { type: "string", default: "0.35" },
      "agent-frame-ms": { type: "string", default: "20" },
      workers: { type: "string", default: "2" },
      repeat: { type: "string", default: "1" },
      "media-threads": { type: "string", default: "1" },
      "opus-inline": { type: "string" },
      "cpu-prof": { type: "string" },
      "node-args": { type: "string", multiple: true },
      "compare-dist": { type: "string", multiple: true },
      "join-seconds": { type: "string", default: "90" },
      "settle-seconds": { type: "string", default: "60" },
    },
  });
  const steps = values.steps.split(",").map(Number);
  const seconds = Number(values.seconds);
  /** A share of time from 0 to 1, or null: the devices never open their microphones. */
  const talk = values.talk === "none" ? null : Number(values.talk);
  if (talk !== null && !(talk >= 0 && talk <= 1))
    throw new Error("--talk must be a share of time from 0 to 1, or none");
  const agentTalk = Number(values["agent-talk"]);
  if (!(agentTalk >= 0 && agentTalk <= 1))
    throw new Error("--agent-talk must be a share of time from 0 to 1");
  const agentFrameMs = Number(values["agent-frame-ms"]);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error("--repeat must be a whole number >= 1");
  /** How long a step waits for all its rooms to be joined before the variant stops there. */
  const JOIN_WAIT_MS = Number(values["join-seconds"]) * 1000;
  if (!(JOIN_WAIT_MS > 0)) throw new Error("--join-seconds must be a number > 0");
  /**
   * Unmeasured time between a step's last room joining and its first window. Measured at 10
   * rooms in 5 s windows (docs/performance.md, "Settling before a step is measured"): with the
   * same frames and wakeups a second, the gateway's main thread took 7.4 % of a core 5-10 s
   * after the rooms joined and ~5 % from ~45 s on (V8 optimising the code run per packet: with
   * --no-opt it stayed at 7.4-8.0 %); the LiveKit server beside it stayed level.
   * With the 2 s this used to be, the median of three windows kept part of that excess.
   */
  const SETTLE_MS = Number(values["settle-seconds"]) * 1000;
  if (!(SETTLE_MS >= 0)) throw new Error("--settle-seconds must be a number >= 0");
  if (![10, 20, 40, 60].includes(agentFrameMs)) throw new Error("--agent-frame-ms must be 10, 20, 40 or 60");
  const mediaThreads = values["media-threads"].split(",");
  const nodeArgSets = (values["node-args"] ?? [""]).map((a) => a.split(" ").filter(Boolean));
  const opusInlineCounts: readonly (string | undefined)[] = values["opus-inline"]?.split(",") ?? [undefined];
  for (const n of opusInlineCounts)
    if (!/^\d+$/.test(n ?? "0")) throw new Error("--opus-inline must be whole numbers >= 0, comma-separated");
  // Media threads and Node options vary the process transport only; the Opus cap, both.
  const variants: Variant[] = values.transports.split(",").flatMap((transport) => {
    const isProcess = transport === "process";
    return (isProcess ? mediaThreads : ["1"]).flatMap((n) =>
      (isProcess ? nodeArgSets : [[]]).flatMap((nodeArgs) =>
        opusInlineCounts.map((opusInline) => {
          const parts = [transport];
          if (isProcess && mediaThreads.length > 1) parts.push(`${n} thread${n === "1" ? "" : "s"}`);
          if (isProcess && nodeArgSets.length > 1) parts.push(nodeArgs.join(" ") || "default Node options");
          if (opusInline !== undefined) parts.push(`${opusInline} inline`);
          return { label: parts.join(", "), transport, mediaThreads: n, nodeArgs, opusInline };
        }),
      ),
    );
  });
  for (const dist of values["compare-dist"] ?? []) {
    if (!existsSync(path.join(dist, "gateway/main.js")) || !existsSync(path.join(dist, "bin/voice-media")))
      throw new Error(
        `--compare-dist ${dist}: no gateway/main.js and bin/voice-media there (run npm run build in that tree)`,
      );
    variants.push({ label: `process, ${dist}`, transport: "process", mediaThreads: "1", nodeArgs: [], dist });
  }
  const command = `# npm run bench:rooms -- --steps ${values.steps} --seconds ${seconds} --talk ${talk ?? "none"} --agent-talk ${agentTalk} --agent-frame-ms ${agentFrameMs} --workers ${values.workers} --repeat ${repeat} --settle-seconds ${SETTLE_MS / 1000} --transports ${values.transports} --media-threads ${values["media-threads"]}${values["opus-inline"] ? ` --opus-inline ${values["opus-inline"]}` : ""}${(values["node-args"] ?? []).map((a) => ` --node-args="${a}"`).join("")}${(values["compare-dist"] ?? []).map((d) => ` --compare-dist ${d}`).join("")}`;
  return {
    steps,
    seconds,
    talk,
    agentTalk,
    agentFrameMs,
    repeat,
    joinWaitMs: JOIN_WAIT_MS,
    settleMs: SETTLE_MS,
    workers: values.workers,
    cpuProf: values["cpu-prof"],
    variants,
    command,
  };
}
