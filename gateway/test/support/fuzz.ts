/**
 * What the property tests (fast-check) share: a tally of outcomes, and text edits that
 * damage a valid input the way a truncated or garbled transmission would.
 */
import fc from "fast-check";

/** 100,000 inputs per property, the figure the fuzz tests promise. */
export const RUNS = 100_000;

export class Tally {
  readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}

export type TextEdit =
  | { readonly op: "insert"; readonly at: number; readonly text: string }
  | { readonly op: "delete"; readonly at: number; readonly count: number }
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "pad"; readonly bytes: number };

export const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(400),
    text: fc.string({ unit: "binary", maxLength: 4 }),
  }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(400), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat(400) }),
  fc.record({ op: fc.constant("pad" as const), bytes: fc.integer({ min: 8000, max: 9000 }) }),
);

export function applyTextEdit(text: string, e: TextEdit): string {
  switch (e.op) {
    case "insert":
      return text.slice(0, e.at % (text.length + 1)) + e.text + text.slice(e.at % (text.length + 1));
    case "delete":
      return text.slice(0, e.at % (text.length + 1)) + text.slice((e.at % (text.length + 1)) + e.count);
    case "truncate":
      return text.slice(0, e.at % (text.length + 1));
    case "pad":
      return text.replace(/}$/, `,"pad":"${"x".repeat(e.bytes)}"}`);
  }
}
