/**
 * The Node runtime the gateway bundle carries: the build machine's own `node`, the very
 * binary the tests ran on. Before it travels it must be something a fresh Ubuntu droplet
 * can run by itself: a linux-x64 build of the official layout (`<prefix>/bin/node` next to
 * `<prefix>/include/node`, the headers native addons were built against), linked only to
 * glibc's and GCC's base libraries (a distribution build linked to libnode/libuv/libssl
 * would fail on the droplet), of a version inside package.json's `engines.node` range.
 *
 * The checks are pure (`checkNodeRuntime`); `hostNodeRuntime` gathers the facts (reads
 * process, the file system and `ldd`).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

export interface NodeRuntimeFacts {
  readonly execPath: string;
  /** `process.version`, e.g. `v20.20.2`. */
  readonly version: string;
  readonly platform: string;
  readonly arch: string;
  /** `process.release.name`: `node` for Node itself. */
  readonly releaseName: string;
  /** Whether `<prefix>/include/node/node_version.h` exists. */
  readonly headers: boolean;
  /** Shared libraries the binary needs (sonames from `ldd`). */
  readonly libraries: readonly string[];
}

/** What official linux-x64 builds link against: present on every glibc system. */
const BASE_LIBRARIES = new Set([
  "linux-vdso.so.1",
  "libdl.so.2",
  "libstdc++.so.6",
  "libm.so.6",
  "libgcc_s.so.1",
  "libpthread.so.0",
  "libc.so.6",
  "ld-linux-x86-64.so.2",
]);

/** The prefix of an official-layout install: `<prefix>/bin/node`. */
export function nodePrefix(execPath: string): string {
  return path.dirname(path.dirname(execPath));
}

/** Throws with what is wrong when the runtime cannot travel in the bundle. Pure. */
export function checkNodeRuntime(facts: NodeRuntimeFacts, engines: string): void {
  const problems: string[] = [];
  if (facts.platform !== "linux" || facts.arch !== "x64") {
    problems.push(`it is a ${facts.platform}-${facts.arch} build; droplets run linux-x64`);
  }
  if (facts.releaseName !== "node") problems.push(`it is ${facts.releaseName}, not Node`);
  if (path.basename(path.dirname(facts.execPath)) !== "bin" || path.basename(facts.execPath) !== "node") {
    problems.push(`${facts.execPath} is not <prefix>/bin/node`);
  }
  if (!facts.headers) {
    problems.push(`${nodePrefix(facts.execPath)}/include/node has no headers to build native addons against`);
  }
  const foreign = facts.libraries.filter((l) => !BASE_LIBRARIES.has(l));
  if (foreign.length > 0) {
    problems.push(`it needs shared libraries a fresh droplet lacks: ${foreign.join(", ")}`);
  }
  if (!satisfies(facts.version, engines)) {
    problems.push(`${facts.version} is outside package.json's engines.node (${engines})`);
  }
  if (problems.length > 0) {
    throw new Error(
      `the Node running this build (${facts.execPath}) cannot travel in the gateway bundle: ${problems.join("; ")}. ` +
        "Run the build with an official linux-x64 Node of the engines range.",
    );
  }
}

/**
 * Whether `version` (`v20.20.2`) is inside `range`: space-separated comparators
 * (`>=20.19 <23`), all of which must hold; `||` alternatives. Enough for engines ranges
 * written as comparators; anything else is refused rather than guessed. Pure.
 */
export function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version.replace(/^v/, ""));
  if (!v) throw new Error(`not a version: ${JSON.stringify(version)}`);
  return range.split("||").some((alt) =>
    alt
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .every((c) => {
        const m = /^(>=|<=|>|<|=)?v?(\d+(?:\.\d+){0,2})$/.exec(c);
        const bound = m ? parseVersion(m[2] as string) : undefined;
        if (!m || !bound)
          throw new Error(`engines.node: cannot read ${JSON.stringify(c)} in ${JSON.stringify(range)}`);
        const cmp = compare(v, bound);
        switch (m[1]) {
          case ">=":
            return cmp >= 0;
          case "<=":
            return cmp <= 0;
          case ">":
            return cmp > 0;
          case "<":
            return cmp < 0;
          default:
            return cmp === 0;
        }
      }),
  );
}

function parseVersion(text: string): [number, number, number] | undefined {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(text);
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Sonames from `ldd` output. Pure. */
export function parseLdd(output: string): string[] {
  return output
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "" && !n.startsWith("statically"))
    .map((n) => path.basename(n));
}

/** The facts of the Node running this process. */
export function hostNodeRuntime(): NodeRuntimeFacts {
  const execPath = process.execPath;
  const ldd = spawnSync("ldd", [execPath], { encoding: "utf8" });
  if (ldd.status !== 0) throw new Error(`ldd ${execPath} failed: ${ldd.stderr || ldd.error?.message}`);
  return {
    execPath,
    version: process.version,
    platform: process.platform,
    arch: process.arch,
    releaseName: process.release.name,
    headers: existsSync(path.join(nodePrefix(execPath), "include/node/node_version.h")),
    libraries: parseLdd(ldd.stdout),
  };
}
