/**
 * Runs the project's own PM2 (node_modules) with its home inside the project's runtime
 * folder (.run/pm2), never the user's ~/.pm2: the local box and the tests cannot disturb
 * (or be disturbed by) another PM2 on the machine.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PM2_BIN = path.join(ROOT, "node_modules/pm2/bin/pm2");

export interface Pm2Options {
  /** PM2_HOME; default .run/pm2. */
  readonly home?: string;
  /** Extra environment for the PM2 CLI (the apps inherit it on `start`). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Runs the CLI in a session of its own, out of the terminal's reach: a Ctrl-C or hang-up
   * sent to the caller's process group does not end it half-way.
   */
  readonly detached?: boolean;
}

export interface Pm2Process {
  readonly name: string;
  readonly pid: number;
  readonly status: string;
  readonly restarts: number;
}

export function pm2Home(options: Pm2Options = {}): string {
  return options.home ?? path.join(ROOT, ".run/pm2");
}

/** Runs one PM2 command; rejects with its output when it fails. */
export function pm2(args: string[], options: Pm2Options = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PM2_BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...options.env, PM2_HOME: pm2Home(options) },
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.detached ?? false,
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`pm2 ${args.join(" ")} exited ${code}:\n${out}`)),
    );
  });
}

export async function pm2List(options: Pm2Options = {}): Promise<Pm2Process[]> {
  const out = await pm2(["jlist"], options);
  const start = out.indexOf("[");
  const list = JSON.parse(start >= 0 ? out.slice(start) : "[]") as {
    name: string;
    pid: number;
    pm2_env?: { status?: string; restart_time?: number };
  }[];
  return list.map((p) => ({
    name: p.name,
    pid: p.pid,
    status: p.pm2_env?.status ?? "unknown",
    restarts: p.pm2_env?.restart_time ?? 0,
  }));
}

/**
 * Stops every app and the PM2 daemon of this home (ignores a daemon that is not running).
 * Detached: a terminal sends Ctrl-C to its whole foreground process group, and a second
 * Ctrl-C during the local box's teardown ended this CLI mid-kill, leaving the daemon and
 * the gateways running while the box exited as if all was stopped.
 */
export async function pm2Kill(options: Pm2Options = {}): Promise<void> {
  await pm2(["kill"], { ...options, detached: true }).catch(() => undefined);
}
