/**
 * The repository as the docs checks read it: its tracked files (git ls-files, so build
 * outputs and untracked notes never count as "exists") and its Markdown docs (README.md
 * and docs/*.md), with their text. Pure reads; nothing is written.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export interface Doc {
  /** Path from the repository root, e.g. "docs/runbook.md". */
  readonly path: string;
  readonly text: string;
}

let trackedCache: readonly string[] | undefined;

/** Every tracked file, as a path from the repository root. */
export function trackedFiles(): readonly string[] {
  trackedCache ??= execFileSync("git", ["ls-files", "-z"], { cwd: repoRoot, encoding: "utf8" })
    .split("\0")
    .filter((f) => f !== "");
  return trackedCache;
}

/** README.md and docs/*.md (not deeper: docs/ has no subfolders of its own). */
export function repoDocs(): Doc[] {
  return trackedFiles()
    .filter((f) => f === "README.md" || /^docs\/[^/]+\.md$/.test(f))
    .map((f) => ({ path: f, text: readFileSync(path.join(repoRoot, f), "utf8") }));
}

/** A tracked file's text. */
export function readTracked(file: string): string {
  return readFileSync(path.join(repoRoot, file), "utf8");
}

/** The 1-based line number of a character offset, for a text (its line starts found once). */
export function lineNumbers(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}
