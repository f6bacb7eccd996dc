/**
 * One read of a gateway's Prometheus text (/metrics) for the benchmarks: a metric's value,
 * a labelled counter's values, a summary's quantile.
 */

export interface MetricsScrape {
  /** The first sample of `name` (labelled or not), 0 when absent. */
  value(name: string): number;
  /** A labelled metric's values by the value of its label `label` (summed over the others). */
  byLabel(name: string, label: string): Map<string, number>;
  /** A summary's quantile `q` ("0.5", "0.99"), in ms; NaN when absent. */
  quantileMs(name: string, q: string): number;
}

export function parseMetrics(text: string): MetricsScrape {
  const lines = text.split("\n");
  const find = (test: (l: string) => boolean) => {
    const line = lines.find(test);
    return line === undefined ? undefined : Number(line.split(" ").pop());
  };
  return {
    value: (name) => find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)) ?? 0,
    byLabel: (name, label) => {
      const values = new Map<string, number>();
      const labelled = new RegExp(`^${name}\\{(?:[^}]*,)?${label}="([^"]*)"[^}]*\\} (\\S+)$`);
      for (const line of lines) {
        const m = labelled.exec(line);
        if (m) values.set(m[1] as string, (values.get(m[1] as string) ?? 0) + Number(m[2]));
      }
      return values;
    },
    quantileMs: (name, q) =>
      1000 * (find((l) => l.startsWith(`${name}{`) && l.includes(`quantile="${q}"`)) ?? Number.NaN),
  };
}

export async function scrapeMetrics(baseUrl: string): Promise<MetricsScrape> {
  return parseMetrics(await (await fetch(`${baseUrl}/metrics`)).text());
}

/** The sum of a labelled counter's values. */
export function sumOf(counts: ReadonlyMap<string, number>): number {
  let sum = 0;
  for (const v of counts.values()) sum += v;
  return sum;
}
