/** bench:rooms result rows for the tests of its report and verdict: the figures a test names, zeros elsewhere. */
import type { Row, VariantResult } from "../../load/rooms-report.ts";

export interface StepFigures {
  rooms: number;
  perRoom: number;
  rssPerRoom?: number;
  fpsUp?: number;
  upP99?: number;
  decodeP99?: number;
}

function row(f: StepFigures): Row {
  return {
    rooms: f.rooms,
    perRoom: f.perRoom,
    rssPerRoom: f.rssPerRoom ?? 1.5,
    fpsUp: f.fpsUp ?? f.rooms * 10,
    upP99: f.upP99 ?? 0.2,
    decodeP99: f.decodeP99 ?? 2,
    cpu: 0,
    mediaCpu: 0,
    mainCpu: 0,
    mainWakeups: 0,
    fpsDown: 0,
    dropsPerSecond: 0,
    dropReasons: "",
    rss: 0,
    mediaRss: 0,
    marginal: 0,
    cpuMin: 0,
    cpuMax: 0,
    lag: 0,
    downP50: 0,
    downP99: 0,
    decodeP50: 0,
    pingP99: 0,
    upP50: 0,
    agent: { rooms: f.rooms, joinFailed: 0, received: 0, matched: 0, blank: 0, sent: 0 },
  };
}

export function result(steps: StepFigures[]): VariantResult {
  return { baseRss: 130, baseMediaRss: 18, baseCpu: 1, rows: steps.map(row) };
}
