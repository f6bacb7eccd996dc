/**
 * The scratch project of infra/test/runbook-recovery.test.ts: the real Pulumi CLI with a
 * local state backend, program.ts as the program, fake-digitalocean.ts on PATH as the
 * `digitalocean` provider, all in a temporary folder (the state, Pulumi.prod.yaml and the
 * runbook's state files land there, never in the checkout). The test changes `knobs`
 * between `up`s; each command sees them through the environment program.ts reads.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ProviderCall } from "./fake-digitalocean.ts";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const pulumiBinDir = path.join(root, ".cache/pulumi/bin");
const programDir = path.join(root, "infra/test/runbook-recovery");
export const DROPLET = "digitalocean:index/droplet:Droplet";
// As `pulumi stack --show-urns` shows it for the production stack (docs/runbook.md).
export const OLD_DROPLET_URN = `urn:pulumi:prod::voice-fleet::voice-fleet:infra:GatewayBox$${DROPLET}::gateway-a`;

export interface Result {
  readonly code: number;
  readonly output: string;
}

export interface StateResource {
  readonly urn: string;
  readonly type: string;
  readonly id?: string;
  readonly delete?: boolean;
}

/** What program.ts builds from, for the next command. */
export interface StackKnobs {
  userData: string;
  sshKeys: string;
  pinned: boolean;
  vpc: string;
}

/**
 * `npm test` builds the CLI first (scripts/prepare.mjs runs build-pulumi.sh: minutes once per
 * machine, then a copy from the machine-wide cache); this finds it built, or builds it.
 */
export function ensurePulumiCli(): void {
  const prepared = spawnSync("bash", [path.join(root, "scripts/build-pulumi.sh")], { encoding: "utf8" });
  if (prepared.status !== 0)
    throw new Error(`scripts/build-pulumi.sh failed:\n${prepared.stdout}${prepared.stderr}`);
}

/** Provider calls as `create Droplet 1001`. */
export const summary = (cs: readonly ProviderCall[]): string[] =>
  cs.map((c) => `${c.op} ${c.type.split(":").at(-1)} ${c.id}`);

export class CliStack {
  readonly knobs: StackKnobs = {
    userData: "",
    sshKeys: "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa",
    pinned: false,
    vpc: "vpc-1",
  };
  work = "";
  #callsFile = "";
  readonly #listeners: Server[] = [];
  #readyPort = 0;

  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PATH: [path.join(this.work, "bin"), pulumiBinDir, process.env.PATH].join(path.delimiter),
      PULUMI_HOME: path.join(this.work, "pulumi-home"),
      PULUMI_BACKEND_URL: `file://${path.join(this.work, "backend")}`,
      PULUMI_CONFIG_PASSPHRASE: "runbook-test",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      // Providers come only from PATH (the stand-in); nothing is ever downloaded.
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_STACK: "prod",
      RUNBOOK_TEST_CALLS: this.#callsFile,
      RUNBOOK_TEST_USER_DATA: this.knobs.userData,
      RUNBOOK_TEST_SSH_KEYS: this.knobs.sshKeys,
      RUNBOOK_TEST_PINNED: String(this.knobs.pinned),
      RUNBOOK_TEST_VPC: this.knobs.vpc,
      RUNBOOK_TEST_READY_PORT: String(this.#readyPort),
    };
  }

  run(file: string, args: readonly string[]): Promise<Result> {
    return new Promise((resolve) => {
      execFile(
        file,
        args,
        { cwd: this.work, env: this.env(), maxBuffer: 16 << 20 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
          resolve({ code, output: `${stdout}${stderr}` });
        },
      );
    });
  }

  pulumi(...args: string[]): Promise<Result> {
    return this.run(path.join(pulumiBinDir, "pulumi"), [...args, "--non-interactive"]);
  }

  /**
   * A runbook command line, through bash as the on-call would paste it. --norc: Node's
   * stdio pipes are sockets, and bash started on a socket with SHLVL unset or 0 (npm test
   * from a non-bash parent: cron, a container's CMD) takes itself for an rshd shell and
   * sources /etc/bash.bashrc and ~/.bashrc, which print into the output (Debian's, under
   * -u: "PS1: unbound variable") and may change PATH away from the pinned CLI.
   */
  shell(command: string): Promise<Result> {
    return this.run("bash", ["--norc", "-euo", "pipefail", "-c", command]);
  }

  up(): Promise<Result> {
    return this.pulumi("up", "--yes", "--skip-preview");
  }

  /** Makes droplet n (the stand-in gives it 127.0.0.(10+n)) accept devices. */
  async dropletReady(n: number): Promise<void> {
    const server = createServer((socket) => socket.destroy());
    this.#listeners.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#readyPort, `127.0.0.${10 + n}`, () => resolve());
    });
    this.#readyPort = (server.address() as { port: number }).port;
  }

  calls(): ProviderCall[] {
    return readFileSync(this.#callsFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ProviderCall);
  }

  /** The provider calls that `step` makes. */
  async callsDuring(step: () => Promise<Result>): Promise<{ result: Result; calls: ProviderCall[] }> {
    const before = this.calls().length;
    const result = await step();
    return { result, calls: this.calls().slice(before) };
  }

  async stateResources(): Promise<StateResource[]> {
    const exported = await this.pulumi("stack", "export");
    assert.equal(exported.code, 0, exported.output);
    const state = JSON.parse(exported.output) as { deployment: { resources?: StateResource[] } };
    return state.deployment.resources ?? [];
  }

  /** The scratch project, and `pulumi stack init prod` in it. */
  async create(): Promise<void> {
    this.work = mkdtempSync(path.join(tmpdir(), "runbook-recovery-"));
    this.#callsFile = path.join(this.work, "calls.jsonl");
    symlinkSync(path.join(root, "node_modules"), path.join(this.work, "node_modules"));
    writeFileSync(path.join(this.work, "package.json"), '{ "private": true, "type": "module" }\n');
    writeFileSync(
      path.join(this.work, "Pulumi.yaml"),
      [
        "name: voice-fleet",
        "main: index.ts",
        "runtime:",
        "  name: nodejs",
        "  options:",
        '    nodeargs: "--import tsx"',
        "",
      ].join("\n"),
    );
    writeFileSync(
      path.join(this.work, "index.ts"),
      `import ${JSON.stringify(path.join(programDir, "program.ts"))};\n`,
    );
    mkdirSync(path.join(this.work, "bin"));
    mkdirSync(path.join(this.work, "backend"));
    const plugin = path.join(this.work, "bin/pulumi-resource-digitalocean");
    writeFileSync(
      plugin,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(path.join(programDir, "fake-digitalocean.ts"))} "$@"\n`,
    );
    chmodSync(plugin, 0o755);
    writeFileSync(this.#callsFile, "");

    const init = await this.pulumi("stack", "init", "prod");
    assert.equal(init.code, 0, init.output);
  }

  async close(): Promise<void> {
    for (const s of this.#listeners) await new Promise((r) => s.close(r));
    if (this.work) rmSync(this.work, { recursive: true, force: true });
  }
}
