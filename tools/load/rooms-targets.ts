/**
 * bench:rooms' verdict against the media-process issue's cost targets, from one run's
 * figures, so that a run on any machine (the 8-vCPU box above all) judges itself the same
 * way docs/performance.md does by hand.
 *
 * The targets, per room of the process transport (gateway + media process): at most 0.5 %
 * of one core and 2 MB RSS, flat within 20 % from 10 to 100 rooms; at least 8x cheaper than
 * rtc-node in the same run; added latency p99 at most 10 ms up and 20 ms down (the agent's
 * RTP reordered and decoded; the deliberate tts-start lead is not added latency). They are
 * stated for devices talking 30 % of the time and an agent talking 35 % in 20 ms packets.
 *
 * Each limit is judged at every step from 10 rooms up ("from 10 to 100 rooms"), so a
 * target met only at the largest step is reported as not met, with the steps it was met
 * at. Flatness is the highest cost per room over the lowest, 10 to 100 rooms. A ratio
 * against rtc-node is only a comparison where rtc-node carried the traffic: a step where it
 * passed on under 90 % of the device frames the process transport did is left out, named.
 */
import type { Row, VariantResult } from "./rooms-report.ts";

export const ROOM_TARGETS = {
  cpuPerRoomPercent: 0.5,
  rssPerRoomMb: 2,
  /** Highest cost per room over the lowest, 10 to 100 rooms. */
  flatRatio: 1.2,
  cheaperThanRtcNode: 8,
  upP99Ms: 10,
  downP99Ms: 20,
  /** The steps the targets speak of. */
  fromRooms: 10,
  flatToRooms: 100,
  /** The traffic they are stated for. */
  deviceTalk: 0.3,
  agentTalk: 0.35,
  agentFrameMs: 20,
} as const;

/** Below this share of the process transport's device frames, rtc-node was saturated. */
const SATURATED_BELOW = 0.9;

export interface TargetVerdict {
  readonly target: string;
  /** The figures it was judged on, by step. */
  readonly figures: string;
  /** undefined: this run cannot say (no step in range, no rtc-node run, ...). */
  readonly met: boolean | undefined;
  readonly note: string;
}

export interface RunTraffic {
  readonly deviceTalk: number | null;
  readonly agentTalk: number;
  readonly agentFrameMs: number;
}

/** Whether the run's traffic is the one the targets are stated for. */
export function trafficMatchesTargets(t: RunTraffic): boolean {
  return (
    t.deviceTalk === ROOM_TARGETS.deviceTalk &&
    t.agentTalk === ROOM_TARGETS.agentTalk &&
    t.agentFrameMs === ROOM_TARGETS.agentFrameMs
  );
}

/** A limit every step must keep; the verdict names the steps that kept it. */
function limit(
  target: string,
  rows: readonly Row[],
  value: (r: Row) => number,
  max: number,
  digits: number,
): TargetVerdict {
  if (rows.length === 0) return { target, figures: "-", met: undefined, note: "no step of 10 rooms or more" };
  const kept = rows.filter((r) => value(r) <= max);
  const figures = rows.map((r) => `${r.rooms}: ${value(r).toFixed(digits)}`).join(", ");
  // Above idle, below zero: the idle baseline read higher than the step (a run too short to settle).
  if (rows.some((r) => value(r) < 0))
    return {
      target,
      figures,
      met: undefined,
      note: "a figure below zero: the idle baseline read above the step",
    };
  if (kept.length === rows.length) return { target, figures, met: true, note: "at every step" };
  const note = kept.length === 0 ? "at no step" : `met at ${kept.map((r) => r.rooms).join(", ")} rooms only`;
  return { target, figures, met: false, note };
}

function flatness(rows: readonly Row[]): TargetVerdict {
  const target = `flat within ${Math.round((ROOM_TARGETS.flatRatio - 1) * 100)} % from ${ROOM_TARGETS.fromRooms} to ${ROOM_TARGETS.flatToRooms} rooms (CPU per room, highest / lowest)`;
  const inRange = rows.filter((r) => r.rooms <= ROOM_TARGETS.flatToRooms);
  if (inRange.length < 2)
    return { target, figures: "-", met: undefined, note: "needs two steps from 10 to 100 rooms" };
  const costs = inRange.map((r) => r.perRoom);
  if (costs.some((c) => c <= 0))
    return {
      target,
      figures: "-",
      met: undefined,
      note: "a cost per room at or below zero (too short a run)",
    };
  const ratio = Math.max(...costs) / Math.min(...costs);
  const first = inRange[0] as Row;
  const last = inRange.at(-1) as Row;
  const note = `${first.rooms} to ${last.rooms} rooms`;
  return { target, figures: `${ratio.toFixed(2)}x`, met: ratio <= ROOM_TARGETS.flatRatio, note };
}

function againstRtcNode(rows: readonly Row[], rtcNode: VariantResult | undefined): TargetVerdict {
  const target = `at least ${ROOM_TARGETS.cheaperThanRtcNode}x cheaper than rtc-node (CPU per room, same steps)`;
  if (!rtcNode) return { target, figures: "-", met: undefined, note: "rtc-node not run" };
  const compared: string[] = [];
  const saturated: number[] = [];
  const ratios: number[] = [];
  for (const p of rows) {
    const r = rtcNode.rows.find((x) => x.rooms === p.rooms);
    if (!r || p.perRoom <= 0 || r.perRoom <= 0) continue;
    if (r.fpsUp < SATURATED_BELOW * p.fpsUp) {
      saturated.push(p.rooms);
      continue;
    }
    const ratio = r.perRoom / p.perRoom;
    ratios.push(ratio);
    compared.push(`${p.rooms}: ${ratio.toFixed(1)}x`);
  }
  const left = saturated.length > 0 ? `; left out, rtc-node saturated: ${saturated.join(", ")} rooms` : "";
  if (ratios.length === 0)
    return { target, figures: "-", met: undefined, note: `no step both carried${left}` };
  const met = ratios.every((x) => x >= ROOM_TARGETS.cheaperThanRtcNode);
  return {
    target,
    figures: compared.join(", "),
    met,
    note: `${met ? "at every step" : "not at every step"}${left}`,
  };
}

/** The verdict on each target, for the process transport's result and, when run, rtc-node's. */
export function judgeRoomTargets(processResult: VariantResult, rtcNode?: VariantResult): TargetVerdict[] {
  const rows = processResult.rows.filter((r) => r.rooms >= ROOM_TARGETS.fromRooms);
  return [
    limit(
      `CPU per room above idle <= ${ROOM_TARGETS.cpuPerRoomPercent} % of a core`,
      rows,
      (r) => r.perRoom,
      ROOM_TARGETS.cpuPerRoomPercent,
      3,
    ),
    limit(
      `RSS per room above idle <= ${ROOM_TARGETS.rssPerRoomMb} MB`,
      rows,
      (r) => r.rssPerRoom,
      ROOM_TARGETS.rssPerRoomMb,
      2,
    ),
    flatness(rows),
    againstRtcNode(rows, rtcNode),
    limit(
      `added latency up, p99 <= ${ROOM_TARGETS.upP99Ms} ms`,
      rows,
      (r) => r.upP99,
      ROOM_TARGETS.upP99Ms,
      2,
    ),
    limit(
      `added latency down (agent RTP reorder + decode), p99 <= ${ROOM_TARGETS.downP99Ms} ms`,
      rows,
      (r) => r.decodeP99,
      ROOM_TARGETS.downP99Ms,
      2,
    ),
  ];
}

function verdictWord(met: boolean | undefined): string {
  if (met === undefined) return "cannot tell";
  return met ? "**met**" : "**not met**";
}

/** The verdicts as the Markdown table bench:rooms prints under its figures. */
export function formatRoomTargets(
  label: string,
  verdicts: readonly TargetVerdict[],
  traffic: RunTraffic,
): string {
  const lines = [
    `Against the issue's targets (transport ${label}; each limit judged at every step from ${ROOM_TARGETS.fromRooms} rooms):`,
  ];
  if (!trafficMatchesTargets(traffic))
    lines.push(
      `(the targets are stated for devices talking ${ROOM_TARGETS.deviceTalk * 100} % of the time and an agent talking ${ROOM_TARGETS.agentTalk * 100} % in ${ROOM_TARGETS.agentFrameMs} ms packets; this run's traffic differs, so these verdicts are indicative only)`,
    );
  lines.push("", "| target | figures by step | verdict | |", "|---|---|---|---|");
  for (const v of verdicts) lines.push(`| ${v.target} | ${v.figures} | ${verdictWord(v.met)} | ${v.note} |`);
  return lines.join("\n");
}
