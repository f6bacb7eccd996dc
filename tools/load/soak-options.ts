/** The soak's command line (tools/soak.ts), read when the soak starts, not at import. */
import { parseArgs } from "node:util";

export interface SoakOptions {
  readonly devices: number;
  readonly durationMs: number;
  /** Hostile packets as a share of the legitimate devices' packet rate. */
  readonly hostileRatio: number;
  readonly instances: number;
  readonly workers: number;
  /** The share of time each device talks. */
  readonly talkRatio: number;
  readonly turnMs: number;
  /** RSS is first measured after this (the heap settles). */
  readonly warmupMs: number;
  /** An instance's RSS may grow by this share from warm-up to the end. */
  readonly maxRssGrowth: number;
}

/** The options, or an Error that says which is wrong. */
export function parseSoakArgs(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
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
  const devices = Number(values.devices);
  const durationMs = Number(values.minutes) * 60_000;
  const hostileRatio = Number(values.hostile);
  const talkRatio = Number(values.talk);
  const warmupMs = values["warmup-seconds"]
    ? Number(values["warmup-seconds"]) * 1000
    : Math.min(60_000, durationMs * 0.2);
  if (!Number.isInteger(devices) || devices < 1) throw new Error("--devices must be a whole number >= 1");
  if (!(durationMs > 0) || !(warmupMs >= 0) || warmupMs >= durationMs) {
    throw new Error("--minutes must be > 0 and longer than the warm-up");
  }
  if (!(hostileRatio >= 0) || !(talkRatio > 0 && talkRatio <= 1))
    throw new Error("--hostile >= 0, --talk in (0, 1]");
  return {
    devices,
    durationMs,
    hostileRatio,
    instances: Number(values.instances),
    workers: Number(values.workers),
    talkRatio,
    turnMs: Number(values["turn-seconds"]) * 1000,
    warmupMs,
    maxRssGrowth: Number(values["max-rss-growth"]),
  };
}
