/** The soak's verdict and its printed report (tools/soak.ts), from the figures of one run. */
import type { HostileTally } from "./hostile.ts";
import { describeMachine } from "./machine.ts";
import type { SoakOptions } from "./soak-options.ts";
import { percentile } from "./stats.ts";

export interface SoakFigures {
  readonly options: SoakOptions;
  readonly command: string;
  readonly seconds: number;
  /** Client id -> how its session was lost. */
  readonly lost: ReadonlyMap<string, string>;
  readonly deviceErrors: Record<string, number>;
  readonly framesUp: number;
  readonly framesEchoed: number;
  readonly roundTripMs: readonly number[];
  readonly hostile: HostileTally;
  readonly drops: Record<string, number>;
  readonly sessionsAtEnd: number;
  readonly legitDevices: number;
  readonly instanceIds: readonly number[];
  readonly rssStart: readonly number[];
  readonly rssEnd: readonly number[];
  readonly cpuPercent: readonly number[];
}

export const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/** The report's lines, ending in PASS or FAIL, and the failures (none: the soak passed). */
export function soakReport(f: SoakFigures): { lines: string[]; failures: string[] } {
  const o = f.options;
  const growth = f.rssEnd.map((r, k) => r / (f.rssStart[k] ?? r) - 1);
  const lostReasons: Record<string, number> = {};
  for (const why of f.lost.values()) lostReasons[why] = (lostReasons[why] ?? 0) + 1;
  const h = f.hostile;
  const sent = f.framesUp;
  const lines = [
    "",
    `# soak result (${new Date().toISOString()})`,
    f.command,
    `machine: ${describeMachine()}`,
    `duration: ${f.seconds.toFixed(0)} s; ${o.devices} devices; ${o.instances} instances x ${o.workers} workers`,
    `legitimate sessions lost: ${f.lost.size}${f.lost.size ? ` ${JSON.stringify(lostReasons)}` : ""}`,
    `device errors: ${Object.keys(f.deviceErrors).length ? JSON.stringify(f.deviceErrors) : "none"}`,
    `legitimate frames: ${sent} up, ${f.framesEchoed} echoed back (${sent ? ((1 - f.framesEchoed / sent) * 100).toFixed(2) : "0"}% not echoed); round trip p50 ${percentile(f.roundTripMs, 50).toFixed(1)} ms p99 ${percentile(f.roundTripMs, 99).toFixed(1)} ms`,
    `hostile traffic sent: ${JSON.stringify(h.sent)}`,
    `takeover attempts (live client id, wrong password): ${h.takeoverRefused} refused, ${h.takeoverAccepted} accepted`,
    `downstream datagrams received by the UDP hijacker: ${h.hijackerHeard}`,
    "gateway drops by reason (whole run):",
    ...Object.entries(f.drops)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${k.padEnd(26)} ${v}`),
    `gateway sessions at the end: ${f.sessionsAtEnd} (${f.legitDevices} legitimate devices + hostile ones)`,
    "RSS per instance (median of 3 samples), after warm-up -> end:",
    ...f.instanceIds.map(
      (id, k) =>
        `  gateway ${id}: ${mb(f.rssStart[k] ?? Number.NaN)} -> ${mb(f.rssEnd[k] ?? Number.NaN)} (${((growth[k] ?? 0) * 100).toFixed(1)}%), CPU ${(f.cpuPercent[k] ?? Number.NaN).toFixed(0)}%`,
    ),
  ];
  const failures: string[] = [];
  if (f.lost.size > 0) failures.push(`${f.lost.size} legitimate session(s) lost`);
  if (h.takeoverAccepted > 0)
    failures.push(`${h.takeoverAccepted} takeover attempt(s) accepted by the broker`);
  if (h.hijackerHeard > 0)
    failures.push(`the UDP hijacker received ${h.hijackerHeard} downstream datagram(s)`);
  growth.forEach((g, k) => {
    if (!(g <= o.maxRssGrowth))
      failures.push(`gateway ${k + 1} RSS grew ${(g * 100).toFixed(1)}% (limit ${o.maxRssGrowth * 100}%)`);
  });
  lines.push(failures.length ? `FAIL: ${failures.join("; ")}` : "PASS");
  return { lines, failures };
}
