#!/usr/bin/env node
// Brings a machine with only Node 20/22 to what `npm start` (`prepare.mjs start`) or
// `npm test` (`prepare.mjs test`) needs, installing or building only what is missing:
//
//   Debian packages    test: .ci/apt-packages.txt (cloud-init, erlang-base, python3-venv);
//                      both: a C++ toolchain and python3, only when npm must build
//                      @discordjs/opus; Go from Debian when no Go is on PATH
//   npm packages       `npm ci` when a dependency is missing or not the locked version
//   Go binaries        .cache/bin/local-broker when broker/ changed; scripts/build-media.sh
//   test only          scripts/build-livekit.sh, scripts/setup-agents-venv.sh,
//                      scripts/build-pulumi.sh (the Pulumi CLI of the runbook test)
//
// Everything is cached (node_modules, .cache/, Go's build cache), so with all present this
// takes about a second. Needing root for apt-get while not root, it stops at once and
// prints the one command to run. Plain Node, no dependencies: it runs before `npm ci`.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const mode = process.argv[2];
if (mode !== "start" && mode !== "test") {
  console.error("usage: node scripts/prepare.mjs start|test");
  process.exit(2);
}
const isRoot = process.getuid?.() === 0;

function fail(message) {
  console.error(`\nprepare: ${message}`);
  process.exit(1);
}

function run(label, cmd, args, options = {}) {
  console.log(`prepare: ${label}`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: "inherit", ...options });
  if (res.error) fail(`${label}: ${res.error.message}`);
  if (res.status !== 0) fail(`${label} failed (exit ${res.status ?? res.signal})`);
}

function onPath(command) {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, command))) return true;
  }
  return false;
}

/** Debian packages from the list that are not installed (dpkg-query, one call). */
function missingDebs(packages) {
  if (packages.length === 0) return [];
  if (!onPath("dpkg-query"))
    fail(`not a Debian system: install the equivalents of ${packages.join(" ")} and retry`);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template
  const format = "-f=${Package} ${db:Status-Status}\\n";
  const res = spawnSync("dpkg-query", ["-W", format, ...packages], {
    encoding: "utf8",
  });
  const installed = new Set(
    (res.stdout ?? "")
      .split("\n")
      .filter((l) => l.endsWith(" installed"))
      .map((l) => l.split(" ")[0]),
  );
  return packages.filter((p) => !installed.has(p));
}

function aptInstall(packages, why) {
  const missing = missingDebs(packages);
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(" ")}`;
  if (!isRoot) fail(`${why} needs Debian packages that are missing. Run:\n\n  sudo sh -c '${command}'\n`);
  run(`apt-get install ${missing.join(" ")} (${why})`, "sh", ["-c", command], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

function versionAtLeast(have, want) {
  const a = have.split(".").map(Number);
  const b = want.split(".").map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

// Node: what package.json's engines say (checked here, where the message can be clear).
const [major, minor] = process.versions.node.split(".").map(Number);
if (!((major === 20 && minor >= 19) || major === 21 || major === 22))
  fail(`Node ${process.versions.node} is not supported: use Node 20 (>= 20.19) or 22`);

// Debian packages the tests call (cloud-init schema, erl, python3 -m venv).
if (mode === "test") {
  const list = readFileSync(path.join(root, ".ci/apt-packages.txt"), "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  aptInstall(list, "npm test");
}

// Go: the broker (and the LiveKit server and the media process) are Go programs. A Go of
// 1.21 or later fetches the toolchain that a go.mod asks for through the configured module
// proxy by itself (GOTOOLCHAIN=auto), so any such Go will do.
if (!onPath("go")) {
  const tooOld =
    "Debian's golang-go is older than Go 1.21 here (Debian 12 has 1.19): install Go >= 1.21 (a newer Debian, or the Go project's release archive) and run this again";
  if (!isRoot)
    fail(
      `Go is not on PATH. On Debian 13 or later run:\n\n  sudo sh -c 'apt-get update && apt-get install -y golang-go'\n\n${tooOld}`,
    );
  run("apt-get update (to look for Go)", "apt-get", ["update", "-qq"]);
  const policy = spawnSync("apt-cache", ["policy", "golang-go"], { encoding: "utf8" }).stdout ?? "";
  // A Debian version such as 2:1.24~2: the Go release is after the epoch, before the ~.
  const candidate = /Candidate:\s*(?:\d+:)?(\d+\.\d+)/.exec(policy)?.[1];
  if (!candidate || !versionAtLeast(candidate, "1.21")) fail(tooOld);
  aptInstall(["golang-go"], "Go");
}
{
  const v = spawnSync("go", ["env", "GOVERSION", "GOTOOLCHAIN"], { encoding: "utf8" });
  const [goVersion = "", toolchain = ""] = (v.stdout ?? "").trim().split("\n");
  const have = goVersion.replace(/^go/, "");
  const want = /^go (\S+)/m.exec(readFileSync(path.join(root, "broker/go.mod"), "utf8"))?.[1] ?? "1.21";
  if (!versionAtLeast(have, "1.21") || (toolchain.startsWith("local") && !versionAtLeast(have, want)))
    fail(
      `Go ${have || "(unknown)"} is too old: the broker needs Go >= ${want} (or >= 1.21 with GOTOOLCHAIN=auto)`,
    );
}

// npm packages: every direct dependency at its locked version, and libopus's native binding.
function npmReady() {
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8"));
  const top = lock.packages?.[""] ?? {};
  const names = Object.keys({ ...top.dependencies, ...top.devDependencies });
  for (const name of names) {
    const locked = lock.packages?.[`node_modules/${name}`]?.version;
    const file = path.join(root, "node_modules", name, "package.json");
    if (!existsSync(file)) return false;
    if (locked && JSON.parse(readFileSync(file, "utf8")).version !== locked) return false;
  }
  // Built per Node ABI (prebuild/node-v<ABI>-napi-...): switching Node needs a rebuild.
  const prebuild = path.join(root, "node_modules/@discordjs/opus/prebuild");
  const abi = `node-v${process.versions.modules}-`;
  return (
    existsSync(prebuild) &&
    readdirSync(prebuild).some((d) => d.startsWith(abi) && existsSync(path.join(prebuild, d, "opus.node")))
  );
}
if (!npmReady()) {
  const nm = path.join(root, "node_modules");
  if (existsSync(nm) && lstatSync(nm).isSymbolicLink())
    fail("node_modules is a link to another checkout and does not match package-lock.json: run npm ci there");
  // @discordjs/opus is compiled (node-gyp) against this Node's own headers.
  if (!onPath("g++") || !onPath("make") || !onPath("python3"))
    aptInstall(["g++", "make", "python3"], "building @discordjs/opus");
  const nodedir = path.dirname(path.dirname(process.execPath));
  run(`npm ci (nodedir=${nodedir})`, "npm", ["ci", "--no-audit", "--no-fund"], {
    env: { ...process.env, npm_config_nodedir: nodedir },
  });
}

// The local broker: rebuilt only when its sources are newer than the binary.
{
  const binary = path.join(root, ".cache/bin/local-broker");
  const brokerDir = path.join(root, "broker");
  const sources = readdirSync(brokerDir).filter((f) => f.endsWith(".go") || f === "go.mod" || f === "go.sum");
  const built = existsSync(binary) ? statSync(binary).mtimeMs : 0;
  if (sources.some((f) => statSync(path.join(brokerDir, f)).mtimeMs > built))
    run("go build the local broker (.cache/bin/local-broker)", "go", ["build", "-o", binary, "."], {
      cwd: brokerDir,
    });
}

// Scripts other parts of the project provide; each is idempotent and says what it did.
const scripts = ["scripts/build-media.sh"];
if (mode === "test")
  scripts.push("scripts/build-livekit.sh", "scripts/setup-agents-venv.sh", "scripts/build-pulumi.sh");
for (const script of scripts) {
  if (existsSync(path.join(root, script))) run(script, "bash", [script]);
}
