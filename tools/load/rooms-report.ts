/**
 * bench:rooms' output: the Markdown tables a person pastes into docs/performance.md, one
 * row per transport and step, and the ratio of the two transports where both ran.
 */
import { describeMachine } from "./machine.ts";

/** What the Go load agent reports, summed over its rooms. */
export interface AgentTotals {
  rooms: number;
  joinFailed: number;
  received: number;
  matched: number;
  /** The LiveKit server's own silence frames (docs/media-process.md). */
  blank: number;
  sent: number;
}

/** One measuring window of a step: CPU % of a core, frames per second. */
export interface Window {
  cpu: number;
  mediaCpu: number;
  /** The gateway's main thread (the rest of `cpu` is its Opus workers and V8's helper threads). */
  mainCpu: number;
  /** Times per second the main thread woke from waiting (its voluntary context switches). */
  mainWakeups: number;
  fpsUp: number;
  fpsDown: number;
  /** Inputs the gateway dropped (gateway_dropped_total, every reason). */
  dropsPerSecond: number;
}

/** A step: its median window, and what the step adds up to. */
export interface Row extends Window {
  rooms: number;
  /** What the gateway dropped over the step's windows, by reason ("" if nothing). */
  dropReasons: string;
  rss: number;
  /** Of `rss`, the media process's (0 for rtc-node). */
  mediaRss: number;
  rssPerRoom: number;
  /** (gateway + media CPU above idle) / rooms. */
  perRoom: number;
  /** CPU added per room since the previous step (from idle for the first). */
  marginal: number;
  /** Lowest and highest total CPU of the step's windows. */
  cpuMin: number;
  cpuMax: number;
  lag: number;
  downP50: number;
  downP99: number;
  /** Process transport: agent RTP in -> PCM to the session (reorder + decode), ms. */
  decodeP50: number;
  decodeP99: number;
  /** Process transport: the media process's liveness ping round trip p99, ms. */
  pingP99: number;
  agent: AgentTotals;
  /** In-gateway upstream latency (datagram in -> handed to the transport), ms. */
  upP50: number;
  upP99: number;
}

/** One variant's figures: its idle baseline and a row per step it completed. */
export interface VariantResult {
  readonly baseRss: number;
  /** Of `baseRss`, the media process's. */
  readonly baseMediaRss: number;
  readonly baseCpu: number;
  readonly rows: Row[];
  /** Why the variant stopped before its last step, if it did (e.g. rooms that never joined). */
  readonly stopped?: string;
}

/** `a / b` as "4.4x"; "-" where b is at or below zero (noise above idle), which no ratio describes. */
function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(1)}x` : "-";
}

/** The labels of the variants compared side by side (each the first of its transport). */
export interface ComparedLabels {
  readonly process?: string;
  readonly rtcNode?: string;
}

/**
 * rtc-node's cost per room against the process transport's at each step both reached, or
 * undefined where either did not run.
 */
export function formatRatioTable(
  results: ReadonlyMap<string, VariantResult>,
  compared: ComparedLabels,
): string | undefined {
  const a = compared.process === undefined ? undefined : results.get(compared.process);
  const b = compared.rtcNode === undefined ? undefined : results.get(compared.rtcNode);
  if (!a || !b) return undefined;
  const lines = [
    `| rooms | CPU per room above idle: ${compared.rtcNode} / ${compared.process} | RSS per room: ${compared.rtcNode} / ${compared.process} |`,
    "|---:|---:|---:|",
  ];
  for (const ra of a.rows) {
    const rb = b.rows.find((r) => r.rooms === ra.rooms);
    if (rb)
      lines.push(
        `| ${ra.rooms} | ${ratio(rb.perRoom, ra.perRoom)} | ${ratio(rb.rssPerRoom, ra.rssPerRoom)} |`,
      );
  }
  return lines.join("\n");
}

/**
 * A figure with `digits` decimals, or "-" where the step has none: a variant that does not
 * measure it (rtc-node has no media process to ping nor agent RTP to decode; a build from
 * before the ping) gives NaN.
 */
function figure(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}

/** One step's line of the main table. */
export function formatStepRow(label: string, row: Row): string {
  const total = row.cpu + row.mediaCpu;
  return `| ${label} | ${row.rooms} | ${row.rss.toFixed(0)} | ${row.mediaRss.toFixed(0)} | ${row.rssPerRoom.toFixed(2)} | ${total.toFixed(1)} | ${row.cpuMin.toFixed(1)}-${row.cpuMax.toFixed(1)} | ${row.mediaCpu.toFixed(1)} | ${row.mainCpu.toFixed(1)} | ${row.mainWakeups.toFixed(0)} | ${row.perRoom.toFixed(3)} | ${row.marginal.toFixed(3)} | ${row.fpsUp.toFixed(0)} | ${row.fpsDown.toFixed(0)} | ${row.dropsPerSecond.toFixed(1)} | ${figure(row.upP50, 2)} / ${figure(row.upP99, 2)} | ${figure(row.downP50, 1)} / ${figure(row.downP99, 1)} | ${figure(row.decodeP50, 2)} / ${figure(row.decodeP99, 2)} | ${figure(row.pingP99, 2)} | ${row.lag.toFixed(1)} | ${row.agent.rooms}, ${row.agent.matched}/${row.agent.received} (${row.agent.blank}), ${row.agent.sent} |`;
}

/** Prints the command line, the machine and the tables; returns the variants that stopped short. */
export function printRoomsReport(
  command: string,
  results: ReadonlyMap<string, VariantResult>,
  compared: ComparedLabels,
): string[] {
  console.log(command);
  console.log(`machine: ${describeMachine()}\n`);
  console.log(
    "| transport | idle CPU % (gateway + media) | idle RSS MB (gateway + media) | of which media |\n|---|---:|---:|---:|",
  );
  for (const [label, r] of results)
    console.log(
      `| ${label} | ${r.baseCpu.toFixed(1)} | ${r.baseRss.toFixed(0)} | ${r.baseMediaRss.toFixed(0)} |`,
    );
  console.log(
    "\n| transport | rooms | RSS MB (gateway + media) | of which media | RSS per room MB | CPU % (gateway + media) | windows' range | of which media | of which gateway main thread | main thread wakeups/s | CPU % per room (above idle) | marginal CPU % per room | frames up/s | frames down/s | inputs dropped/s | up latency p50/p99 ms | down latency p50/p99 ms | agent RTP decode p50/p99 ms | media ping p99 ms | loop lag p99 ms | load agent: rooms, device packets matched/received (server silence frames), sent |",
  );
  console.log(
    "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  );
  for (const [label, r] of results) {
    for (const row of r.rows) console.log(formatStepRow(label, row));
  }
  const ratios = formatRatioTable(results, compared);
  if (ratios !== undefined) console.log(`\n${ratios}`);
  // A step whose inputs were dropped measured less traffic than it offered: say what.
  const dropped = [...results].flatMap(([label, r]) =>
    r.rows
      .filter((row) => row.dropReasons !== "")
      .map((row) => `${label}, ${row.rooms} rooms: ${row.dropReasons}`),
  );
  if (dropped.length > 0)
    console.log(`\nDropped by the gateway during the windows:\n${dropped.map((d) => `- ${d}`).join("\n")}`);
  const stopped = [...results].flatMap(([label, r]) => (r.stopped ? [`${label}: ${r.stopped}`] : []));
  if (stopped.length > 0) console.log(`\nStopped short:\n${stopped.map((s) => `- ${s}`).join("\n")}`);
  return stopped;
}
