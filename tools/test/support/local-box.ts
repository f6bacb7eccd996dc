/**
 * The local box (tools/local-box.ts) run by a test as `npm start` runs it, inside a network
 * namespace of the test's own (gateway/test/support/netns.ts: its ports 1883, 8002 and
 * 9001-9004 clash with no developer's box or other test) and with a run folder of its own
 * (`--run-dir`: its PM2 home, key, logs and bundle), and its output awaited line by line.
 */
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { endOf } from "../../../gateway/test/support/child-exit.ts";
import type { NetNamespace } from "../../../gateway/test/support/netns.ts";
import { eventually } from "../../../gateway/test/support/stack.ts";
import { running } from "../../local-box/processes.ts";
import { ROOT } from "../../pm2.ts";

/** The box's stdout, kept and awaited line by line. */
export class Output extends EventEmitter<{ line: [string] }> {
  readonly lines: string[] = [];
  constructor(stream: NodeJS.ReadableStream) {
    super();
    createInterface({ input: stream }).on("line", (line) => {
      this.lines.push(line);
      this.emit("line", line);
    });
  }
  waitFor(pattern: RegExp, timeoutMs: number, exited: Promise<number | null>): Promise<RegExpMatchArray> {
    const seen = this.lines.map((l) => l.match(pattern)).find((m) => m !== null);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onLine = (line: string) => {
        const m = line.match(pattern);
        if (!m) return;
        clearTimeout(timer);
        this.off("line", onLine);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.off("line", onLine);
        reject(new Error(`the box printed no ${pattern} within ${timeoutMs} ms:\n${this.lines.join("\n")}`));
      }, timeoutMs);
      this.on("line", onLine);
      void exited.then((code) => {
        clearTimeout(timer);
        this.off("line", onLine);
        reject(new Error(`the box exited (${code}) before printing ${pattern}:\n${this.lines.join("\n")}`));
      });
    });
  }
}

export interface LocalBox {
  /** The box's own process (setpriv execs node: the pid is the box's). */
  readonly process: ChildProcess;
  /** Its stdout, and its stderr as `stderr: ` lines. */
  readonly output: Output;
  /** Its exit code; null when a signal ended it. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `tools/local-box.ts up <args>` in `ns` (args must name a `--run-dir`), as `npm
 * start` does after scripts/prepare.mjs (which `npm test` ran). Should the test process die
 * unannounced (SIGKILL), the box is sent SIGTERM, and stops its PM2 and broker itself.
 */
export function startLocalBox(
  ns: NetNamespace,
  args: readonly string[],
  options: {
    /**
     * The box leads a process group of its own, as a shell's foreground job does: a test
     * signals that group (`process.kill(-pid)`) as a terminal's Ctrl-C or hang-up does, and
     * reaches the children the box has not detached (broker, a PM2 CLI under way) too.
     */
    readonly processGroup?: boolean;
    /** Added to the box's environment (and so to what it starts). */
    readonly env?: NodeJS.ProcessEnv;
  } = {},
): LocalBox {
  if (!args.includes("--run-dir")) throw new Error("a test's box needs a --run-dir of its own");
  const child = ns.spawn(
    "setpriv",
    [
      "--pdeathsig",
      "SIGTERM",
      "--",
      process.execPath,
      "--import",
      "tsx",
      "tools/local-box.ts",
      "up",
      ...args,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.processGroup ?? false,
    },
  );
  const exited = endOf(child).then(({ code }) => code);
  const output = new Output(child.stdout as NodeJS.ReadableStream);
  child.stderr?.on("data", (d: Buffer) => output.lines.push(`stderr: ${d.toString().trimEnd()}`));
  return { process: child, output, exited };
}

/**
 * Runs `tools/local-box.ts <command> <args>` (`npm stop` is `down`) in `ns` to its end (60 s
 * at most), without blocking this process: a test may watch it meanwhile (watchProcesses).
 */
export function runLocalBoxCommand(
  ns: NetNamespace,
  command: "up" | "down",
  args: readonly string[],
): Promise<{ readonly status: number | null; readonly output: string }> {
  const child = ns.spawn(process.execPath, ["--import", "tsx", "tools/local-box.ts", command, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const timer = setTimeout(() => {
    output += "\n(still running after 60 s: SIGKILLed)";
    child.kill("SIGKILL");
  }, 60_000);
  return new Promise((resolve) => {
    child.once("error", (err) => {
      output += `\n${err.message}`;
    });
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

/**
 * Every process of `ns` whose command line matches `pattern`, seen from now until `stop()`,
 * as "pid command line": /proc is looked at every 20 ms, and a PM2 CLI lives 0.3 s at least
 * (Node's start and PM2's loading alone).
 */
export function watchProcesses(ns: NetNamespace, pattern: RegExp): { stop(): string[] } {
  const seen = new Map<number, string>();
  const look = () => {
    for (const pid of ns.pids()) {
      const command = commandLine(pid);
      if (command !== undefined && pattern.test(command) && !seen.has(pid)) seen.set(pid, command);
    }
  };
  look();
  const timer = setInterval(look, 20);
  return {
    stop() {
      clearInterval(timer);
      return [...seen].map(([pid, command]) => `${pid} ${command}`);
    },
  };
}

/**
 * Waits until the box's teardown runs `pm2 kill` in `ns` (the gateways draining), or the box
 * has ended; true while the box still runs. A test sends its second signal then.
 */
export async function untilTeardownKillsPm2(
  box: LocalBox,
  ns: NetNamespace,
  timeoutMs: number,
): Promise<boolean> {
  const child = box.process;
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  await eventually(
    () => ended() || ns.pids().some((pid) => /\bpm2 kill$/.test(commandLine(pid) ?? "")),
    timeoutMs,
    "the teardown's pm2 kill",
  );
  return !ended();
}

/** The command line of `pid`; undefined once it is gone. */
export function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return undefined;
  }
}

/**
 * What runs in the namespace besides its holder, as "pid command line". A zombie does not
 * run: a gateway the box SIGKILLed after its PM2 daemon is init's to reap, and the box
 * (processes.ts `running`) rightly took it for gone; a clean-clone CI run saw one still
 * unreaped here (its command line empty) and failed.
 */
export function leftIn(ns: NetNamespace): string[] {
  return ns
    .pids()
    .filter((pid) => pid !== ns.pid && running(pid))
    .map((pid) => `${pid} ${commandLine(pid) ?? "(gone)"}`);
}
