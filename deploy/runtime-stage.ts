/**
 * The production node_modules of the gateway bundle, installed on the build machine:
 * `npm ci --omit=dev` from dist/'s runtime package.json and pruned lockfile into a staging
 * folder, native addons (@discordjs/opus) compiled here against the headers of the Node
 * that runs this build (npm_config_nodedir, as scripts/prepare.mjs does), the Node that
 * then travels in the bundle. The droplet unpacks the result and compiles nothing.
 *
 * Staged once per (package.json, lockfile, Node version): `.cache/runtime/<key>/`, so
 * `npm run plan`, `pulumi up` and the tests reuse it. npm takes packages from its own
 * cache first (`--prefer-offline`) and otherwise from its configured registry.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { checkNodeRuntime, hostNodeRuntime, nodePrefix } from "./node-runtime.ts";
import { pruneLockfile, toolsManifest } from "./runtime-package.ts";

/** Where staged runtimes are kept, relative to the repository root (git-ignored). */
export const RUNTIME_CACHE_DIR = ".cache/runtime";

const DONE = ".staged";

/**
 * Returns a folder whose `node_modules` holds the dependencies of the package.json and
 * package-lock.json in `distDir`, built for the running Node (checked to be one that can
 * travel: deploy/node-runtime.ts).
 */
export function stageRuntime(distDir: string, cacheDir: string): string {
  const manifest = readFileSync(path.join(distDir, "package.json"));
  const lock = readFileSync(path.join(distDir, "package-lock.json"));
  const engines = (JSON.parse(manifest.toString()) as { engines?: { node?: string } }).engines?.node;
  if (!engines) throw new Error(`${distDir}/package.json has no engines.node`);
  checkNodeRuntime(hostNodeRuntime(), engines);
  const key = createHash("sha256")
    .update(manifest)
    .update(lock)
    .update(`${process.version} ${process.platform}-${process.arch}`)
    .digest("hex")
    .slice(0, 16);
  const dir = path.join(cacheDir, key);
  if (existsSync(path.join(dir, DONE))) return dir;

  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  copyFileSync(path.join(distDir, "package.json"), path.join(tmp, "package.json"));
  copyFileSync(path.join(distDir, "package-lock.json"), path.join(tmp, "package-lock.json"));
  const nodeBin = path.dirname(process.execPath);
  const res = spawnSync(
    "npm",
    ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
    {
      cwd: tmp,
      encoding: "utf8",
      env: {
        ...process.env,
        // npm, node-gyp and install scripts run on this very Node, against its own headers.
        PATH: `${nodeBin}${path.delimiter}${process.env.PATH ?? ""}`,
        npm_config_nodedir: nodePrefix(process.execPath),
      },
    },
  );
  if (res.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`npm ci --omit=dev for the bundle failed (${res.status}):\n${res.stdout}${res.stderr}`);
  }
  const deps = (JSON.parse(manifest.toString()) as { dependencies?: Record<string, string> }).dependencies;
  if (deps && "@discordjs/opus" in deps) assertOpusBuilt(tmp);
  writeFileSync(path.join(tmp, DONE), `${process.version}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

/**
 * Stages the tools-only package (PM2) of the Node runtime object: writes its manifest and
 * pruned lockfile from the repository's under `<cacheDir>/tools-input`, then stages it.
 */
export function stageTools(root: string, cacheDir: string): string {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8"));
  const manifest = toolsManifest(pkg);
  const input = path.join(cacheDir, "tools-input");
  mkdirSync(input, { recursive: true });
  // Written whole and renamed: test processes may stage at the same time.
  const put = (name: string, value: unknown): void => {
    const tmp = path.join(input, `${name}.${process.pid}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
    renameSync(tmp, path.join(input, name));
  };
  put("package.json", manifest);
  put("package-lock.json", pruneLockfile(lock, manifest));
  return stageRuntime(input, cacheDir);
}

/** @discordjs/opus must have compiled for this Node's ABI, or the bundle cannot start. */
function assertOpusBuilt(dir: string): void {
  const prebuild = path.join(dir, "node_modules/@discordjs/opus/prebuild");
  const abi = `node-v${process.versions.modules}-`;
  const ok =
    existsSync(prebuild) &&
    readdirSync(prebuild).some((d) => d.startsWith(abi) && existsSync(path.join(prebuild, d, "opus.node")));
  if (!ok)
    throw new Error(`@discordjs/opus was not built for ${process.version} (no ${abi}* in ${prebuild})`);
}
