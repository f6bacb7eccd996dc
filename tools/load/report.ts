/** The load test's outputs: a Markdown table and an SVG chart a person can open. */

export interface InstanceFigures {
  readonly instanceId: number;
  readonly sessions: number;
  readonly cpuPercent: number;
  readonly rssMb: number;
  readonly eventLoopLagP99Ms: number;
  /** Share of the main thread spent coding its own streams (OPUS_INLINE_STREAMS), 0..1. */
  readonly inlineCodecUtilization: number;
  readonly workerUtilization: number[];
  /** Time inside the gateway (its own summaries), ms. */
  readonly upstreamP99Ms: number;
  readonly downstreamP50Ms: number;
  readonly downstreamP99Ms: number;
}

export interface StepResult {
  readonly devices: number;
  readonly talking: number;
  readonly helloP50Ms: number;
  readonly helloP99Ms: number;
  readonly rttP50Ms: number;
  readonly rttP95Ms: number;
  readonly rttP99Ms: number;
  readonly framesSent: number;
  readonly framesReceived: number;
  readonly lossPercent: number;
  readonly reordered: number;
  readonly deviceErrors: number;
  readonly gatewayDrops: Record<string, number>;
  readonly instances: InstanceFigures[];
  readonly generatorCpuPercent: number;
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "–");
const percent = (share: number) => (Number.isFinite(share) ? (share * 100).toFixed(0) : "–");

export function markdownTable(steps: readonly StepResult[]): string {
  const head =
    "| devices | talking | hello p50/p99 ms | round trip p50/p95/p99 ms | frames sent/recv | loss % | reordered | device errors | gateway drops | per instance: sessions, CPU %, RSS MB, loop lag p99 ms, codec util % (main thread; each worker), in-gateway up p99 / down p50, p99 ms | load generator CPU % |\n" +
    "|---:|---:|---|---|---|---:|---:|---:|---|---|---:|";
  const lines = steps.map((s) => {
    const inst = s.instances
      .map(
        (i) =>
          `#${i.instanceId}: ${i.sessions}, ${f1(i.cpuPercent)}, ${f1(i.rssMb)}, ${f1(i.eventLoopLagP99Ms)}, ${percent(i.inlineCodecUtilization)}; ${i.workerUtilization.map(percent).join("/")}, ${f1(i.upstreamP99Ms)} / ${f1(i.downstreamP50Ms)}, ${f1(i.downstreamP99Ms)}`,
      )
      .join("<br>");
    const drops = Object.entries(s.gatewayDrops)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    return `| ${s.devices} | ${s.talking} | ${f1(s.helloP50Ms)} / ${f1(s.helloP99Ms)} | ${f1(s.rttP50Ms)} / ${f1(s.rttP95Ms)} / ${f1(s.rttP99Ms)} | ${s.framesSent} / ${s.framesReceived} | ${s.lossPercent.toFixed(2)} | ${s.reordered} | ${s.deviceErrors} | ${drops || "none"} | ${inst} | ${f1(s.generatorCpuPercent)} |`;
  });
  return [head, ...lines].join("\n");
}

/** Round-trip p99 and total gateway RSS against devices, two y axes. */
export function svgChart(steps: readonly StepResult[], title: string): string {
  const W = 640;
  const H = 360;
  const pad = { l: 60, r: 60, t: 40, b: 50 };
  const xs = steps.map((s) => s.devices);
  const rtt = steps.map((s) => (Number.isFinite(s.rttP99Ms) ? s.rttP99Ms : 0));
  const rss = steps.map((s) => s.instances.reduce((a, i) => a + i.rssMb, 0));
  const xMax = Math.max(1, ...xs);
  const yL = Math.max(1, ...rtt) * 1.15;
  const yR = Math.max(1, ...rss) * 1.15;
  const x = (v: number) => pad.l + (v / xMax) * (W - pad.l - pad.r);
  const yl = (v: number) => H - pad.b - (v / yL) * (H - pad.t - pad.b);
  const yr = (v: number) => H - pad.b - (v / yR) * (H - pad.t - pad.b);
  const line = (vals: number[], y: (v: number) => number) =>
    vals.map((v, i) => `${i === 0 ? "M" : "L"}${x(xs[i] as number).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const dots = (vals: number[], y: (v: number) => number, color: string) =>
    vals
      .map(
        (v, i) =>
          `<circle cx="${x(xs[i] as number).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"/>`,
      )
      .join("");
  const esc = (s: string) =>
    s.replace(/[<&>]/g, (c) => ({ "<": "&lt;", "&": "&amp;", ">": "&gt;" })[c] as string);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>
<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="black"/>
<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#c0392b"/>
<line x1="${W - pad.r}" y1="${pad.t}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#2471a3"/>
<text x="${W / 2}" y="${H - 12}" text-anchor="middle">simulated devices</text>
<text x="16" y="${H / 2}" transform="rotate(-90 16 ${H / 2})" text-anchor="middle" fill="#c0392b">round trip p99 (ms)</text>
<text x="${W - 14}" y="${H / 2}" transform="rotate(90 ${W - 14} ${H / 2})" text-anchor="middle" fill="#2471a3">gateway RSS, all instances (MB)</text>
${xs.map((v) => `<text x="${x(v).toFixed(1)}" y="${H - pad.b + 16}" text-anchor="middle">${v}</text>`).join("")}
<text x="${pad.l - 6}" y="${pad.t + 4}" text-anchor="end" fill="#c0392b">${yL.toFixed(0)}</text>
<text x="${W - pad.r + 6}" y="${pad.t + 4}" fill="#2471a3">${yR.toFixed(0)}</text>
<path d="${line(rtt, yl)}" fill="none" stroke="#c0392b" stroke-width="2"/>${dots(rtt, yl, "#c0392b")}
<path d="${line(rss, yr)}" fill="none" stroke="#2471a3" stroke-width="2" stroke-dasharray="6 3"/>${dots(rss, yr, "#2471a3")}
</svg>
`;
}
