/**
 * Runs the project's own PM2 (node_modules) with its home inside the project's runtime
 * folder (.run/pm2), never the user's ~/.pm2: the local box and the tests cannot disturb
 * (or be disturbed by) another PM2 on the machine.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { environ, environsReadable, running } from "./local-box/processes.ts";

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
  /**
   * Bounds on the CLI's run, after which it is SIGKILLed and the call rejects with
   * Pm2NoAnswer. None: it may wait for ever, as the CLI does on a daemon that is stopped
   * (SIGSTOP) or stuck (it connects, sends, and waits for a reply with no time limit).
   */
  readonly bounds?: Pm2Bounds;
}

export interface Pm2Bounds {
  /**
   * Until the CLI's first output (stdout or stderr): it prints only once the daemon has
   * answered its first request, or while it spawns a daemon where none ran.
   */
  readonly firstOutputMs: number;
  /** The whole run. */
  readonly totalMs: number;
}

/** The PM2 CLI was killed at one of its bounds: its daemon did not answer in time. */
export class Pm2NoAnswer extends Error {}

export interface Pm2Process {
  readonly name: string;
  readonly pid: number;
  readonly status: string;
  readonly restarts: number;
}

export function pm2Home(options: Pm2Options = {}): string {
  return options.home ?? path.join(ROOT, ".run/pm2");
}

/** Runs one PM2 command; rejects with its output when it fails or runs past its bounds. */
export function pm2(args: string[], options: Pm2Options = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const detached = options.detached ?? false;
    const child = spawn(process.execPath, [PM2_BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...options.env, PM2_HOME: pm2Home(options) },
      stdio: ["ignore", "pipe", "pipe"],
      detached,
    });
    let out = "";
    let noReply: NodeJS.Timeout | undefined;
    let notDone: NodeJS.Timeout | undefined;
    const giveUp = (what: string, ms: number) => {
      clearTimeout(noReply);
      clearTimeout(notDone);
      // Detached, the CLI leads a process group of its own: nothing of it is left.
      try {
        if (detached && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        else child.kill("SIGKILL");
      } catch {
        // gone meanwhile
      }
      reject(
        new Pm2NoAnswer(
          `the PM2 daemon (PM2_HOME=${pm2Home(options)}) did not answer \`pm2 ${args.join(" ")}\` (${what} within ${ms / 1000} s: stopped or stuck?); its CLI was killed${out ? `:\n${out}` : ""}`,
        ),
      );
    };
    if (options.bounds) {
      const { firstOutputMs, totalMs } = options.bounds;
      noReply = setTimeout(() => giveUp("no reply", firstOutputMs), firstOutputMs);
      notDone = setTimeout(() => giveUp("not done", totalMs), totalMs);
    }
    const onOutput = (d: Buffer) => {
      out += d.toString();
      clearTimeout(noReply);
    };
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(noReply);
      clearTimeout(notDone);
      code === 0 ? resolve(out) : reject(new Error(`pm2 ${args.join(" ")} exited ${code}:\n${out}`));
    });
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
 * The bounds of `pm2 kill`. A daemon that runs answers the CLI's first request at once: 5 s
 * is the CLI's own start (0.3 to 0.5 s) ten times over, for a loaded 2-core machine. Once
 * it answered, it stops every app at the same time, each within its kill_timeout (the
 * gateways' 10 s: deploy/ecosystem.ts, their drain within it), then waits up to 3 s for
 * its own exit: 20 s leaves that drain its time. Past them, the daemon is stopped (SIGSTOP)
 * or stuck, and `pm2 kill` would never return: the caller's next steps (the local box's
 * SIGKILL of everything it started) must still run.
 */
export const PM2_KILL_BOUNDS: Pm2Bounds = { firstOutputMs: 5000, totalMs: 20_000 };

/**
 * The bounds of the local box's `pm2 start` of its ecosystem. The CLI prints at once
 * ("Spawning PM2 daemon") when no daemon runs, as in the box (stopLeftovers killed any at
 * its start), and otherwise once that daemon answered its first request: 5 s, as for `pm2
 * kill`. Then the daemon must come up (the CLI waits for its ready message) and launch the
 * 5 apps (4 gateways, the device verifier) before the CLI returns: on this 2-core machine,
 * 2.2 s from the box's "broker listening" to all 4 gateways' health answering, a `pm2 kill`
 * and the gateways' own start included (once, tools/test/support/local-box.ts's box,
 * --devices 0); 60 s is that over 25 times, for a loaded machine (the suite beside it).
 * Past them, the daemon is stopped (SIGSTOP) or stuck, and `npm start` would hang without
 * a word.
 */
export const PM2_START_BOUNDS: Pm2Bounds = { firstOutputMs: 5000, totalMs: 60_000 };

/**
 * Whether a PM2 daemon of `home` runs; undefined where this cannot be told (no /proc: macOS).
 * The daemon writes its pid to <home>/pm2.pid first thing at its start and removes it at its
 * exit (node_modules/pm2: paths.js's PM2_PID_FILE_PATH, lib/Daemon.js); the file outlives a
 * daemon that was SIGKILLed, and its pid may have gone to another process since. So the pid
 * counts only while it runs (a zombie does not) with PM2_HOME=<home> in its initial
 * environment, which the CLI that spawned the daemon gave it (pm2() above; lib/Client.js)
 * and which no process can change: the command line ("PM2 v7.0.4: God Daemon (<home>)") is
 * cut short for a long home.
 */
export function pm2DaemonRuns(home: string): boolean | undefined {
  if (!environsReadable()) return undefined;
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(home, "pm2.pid"), "utf8").trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !running(pid)) return false;
  return environ(pid).includes(`PM2_HOME=${home}`);
}

/**
 * Stops every app and the PM2 daemon of this home. Where none runs (pm2DaemonRuns), it does
 * nothing: `pm2 kill` would start a daemon first, to talk to (0.3 to 0.5 s, and a daemon of
 * that home for a moment); where that cannot be told (macOS), it runs `pm2 kill` all the same.
 * Resolves with a line saying the daemon did not answer within PM2_KILL_BOUNDS (its CLI is
 * then killed; the daemon and its apps still run), for the caller to print; undefined
 * otherwise.
 * Detached: a terminal sends Ctrl-C to its whole foreground process group, and a second
 * Ctrl-C during the local box's teardown ended this CLI mid-kill, leaving the daemon and
 * the gateways running while the box exited as if all was stopped.
 */
export async function pm2Kill(options: Pm2Options = {}): Promise<string | undefined> {
  if (pm2DaemonRuns(pm2Home(options)) === false) return undefined;
  try {
    await pm2(["kill"], { ...options, detached: true, bounds: PM2_KILL_BOUNDS });
  } catch (err) {
    if (err instanceof Pm2NoAnswer) return err.message;
  }
  return undefined;
}
