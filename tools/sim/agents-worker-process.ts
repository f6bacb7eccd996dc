/**
 * Starts the test agent of tools/agents/ (a real LiveKit Agents 1.2 worker, Python, in
 * .cache/agents-venv) against a LiveKit server, waits until the server has registered it,
 * and stops it with all its job processes.
 *
 * The venv comes from scripts/setup-agents-venv.sh; this module never installs anything
 * (pip takes minutes): `agentsVenvStatus()` says whether it is there and current, and
 * `startAgentsWorker` refuses, naming the script, when it is not.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const VENV = path.join(root, ".cache/agents-venv");
const PYTHON = path.join(VENV, "bin/python");
const STAMP = path.join(VENV, ".requirements.sha256");
const REQUIREMENTS = path.join(root, "tools/agents/requirements.txt");
const AGENT = path.join(root, "tools/agents/agent.py");
/** The one command that creates (or refreshes) the venv, for messages. */
export const AGENTS_VENV_SETUP = "bash scripts/setup-agents-venv.sh";

export type AgentsVenvStatus = { readonly ready: true } | { readonly ready: false; readonly why: string };

/** Whether the venv exists and was built from the current requirements file. */
export function agentsVenvStatus(): AgentsVenvStatus {
  if (!existsSync(PYTHON) || !existsSync(STAMP)) {
    return { ready: false, why: `no agents venv at ${VENV}` };
  }
  const want = createHash("sha256").update(readFileSync(REQUIREMENTS)).digest("hex");
  if (readFileSync(STAMP, "utf8").trim() !== want) {
    return {
      ready: false,
      why: `${VENV} was built from other requirements than tools/agents/requirements.txt`,
    };
  }
  return { ready: true };
}

/** The fixed texts of the agent's fakes (tools/agents/fakes.py). */
export interface AgentScript {
  /** Spoken on `start_greeting` / `agent_ready`. */
  readonly greeting: string;
  /** The fake STT's final transcript of every user utterance (about 1 s of voice). */
  readonly transcript: string;
  /** The fake LLM's reply to every user turn (spoken for fakeTtsSeconds(reply)). */
  readonly reply: string;
}

/**
 * How long the fake TTS speaks `text` (tools/agents/fakes.py `tts_seconds`, which the
 * framework calls once per sentence): 0.045 s a character, between 0.8 s and 4 s.
 */
export function fakeTtsSeconds(text: string): number {
  return Math.min(4, Math.max(0.8, 0.045 * text.length));
}

export interface LiveKitEndpoint {
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
}

export interface AgentsWorker {
  /** The id the server gave the worker on registration (AW_...). */
  readonly workerId: string;
  readonly process: ChildProcess;
  /** The worker's recent log lines (stdout and stderr), for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

export interface AgentsWorkerOptions {
  readonly script: AgentScript;
  /** How long to wait for registration; the first import of the framework is slow. Default 60 s. */
  readonly registerTimeoutMs?: number;
  /** Copy the worker's log lines to this process's stderr (debugging). Default: VF_AGENT_LOGS=1. */
  readonly echo?: boolean;
}

/** Matches the framework's own log line (worker.py `_handle_register`), plain or JSON. */
const REGISTERED = /registered worker/;

export async function startAgentsWorker(
  lk: LiveKitEndpoint,
  options: AgentsWorkerOptions,
): Promise<AgentsWorker> {
  const venv = agentsVenvStatus();
  if (!venv.ready) throw new Error(`${venv.why}: run \`${AGENTS_VENV_SETUP}\` first`);
  const echo = options.echo ?? process.env.VF_AGENT_LOGS === "1";

  const child = spawn(PYTHON, [AGENT, "start", "--log-level", "INFO"], {
    cwd: root,
    // Its own process group: the worker forks job processes, and stop() signals them all.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    // A minimal environment: no proxy variables (everything it reaches is on loopback), and
    // the secret in the environment rather than argv, so it does not show in `ps`.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? root,
      LANG: "C.UTF-8",
      PYTHONUNBUFFERED: "1",
      // No __pycache__ next to tools/agents/*.py in the work tree.
      PYTHONDONTWRITEBYTECODE: "1",
      LIVEKIT_URL: lk.url,
      LIVEKIT_API_KEY: lk.apiKey,
      LIVEKIT_API_SECRET: lk.apiSecret,
      TEST_AGENT_GREETING: options.script.greeting,
      TEST_AGENT_TRANSCRIPT: options.script.transcript,
      TEST_AGENT_REPLY: options.script.reply,
    },
  });
  const pgid = child.pid;
  if (pgid === undefined) throw new Error(`could not start ${PYTHON}`);

  const tail: string[] = [];
  let workerId: string | undefined;
  let onRegistered: ((id: string) => void) | undefined;
  const onLine = (line: string): void => {
    if (echo) process.stderr.write(`[agents-worker] ${line}\n`);
    tail.push(line);
    if (tail.length > 200) tail.shift();
    if (workerId === undefined && REGISTERED.test(line)) {
      workerId = parseWorkerId(line);
      onRegistered?.(workerId);
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let partial = "";
    stream?.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) onLine(l);
    });
  }

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pgid, signal);
    } catch {
      // the group is gone already
    }
  };
  // If this process dies without calling stop(), take the worker and its jobs along.
  const onExit = (): void => killGroup("SIGKILL");
  process.once("exit", onExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM to the worker alone: it drains (drain_timeout 5 s) and closes its job
        // processes itself; a second signal makes the framework exit at once; SIGKILL to
        // the whole group is the last resort.
        child.kill("SIGTERM");
        const timers = [
          setTimeout(() => child.kill("SIGINT"), 7_000),
          setTimeout(() => killGroup("SIGKILL"), 10_000),
        ];
        await exited;
        for (const t of timers) clearTimeout(t);
      }
      // Job processes that outlived their parent.
      killGroup("SIGKILL");
      process.off("exit", onExit);
    })();
    return stopped;
  };

  const timeoutMs = options.registerTimeoutMs ?? 60_000;
  try {
    const id = await new Promise<string>((resolve, reject) => {
      if (workerId !== undefined) return resolve(workerId);
      const timer = setTimeout(
        () => reject(new Error(`the agents worker did not register within ${timeoutMs} ms`)),
        timeoutMs,
      );
      onRegistered = (registered) => {
        clearTimeout(timer);
        resolve(registered);
      };
      void exited.then(() => {
        clearTimeout(timer);
        reject(
          new Error(`the agents worker exited (${child.exitCode ?? child.signalCode}) before registering`),
        );
      });
    });
    return { workerId: id, process: child, logTail: () => tail.join("\n"), stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; its last output:\n${tail.slice(-40).join("\n")}`);
  }
}

function parseWorkerId(line: string): string {
  try {
    const parsed = JSON.parse(line) as { id?: unknown };
    if (typeof parsed.id === "string") return parsed.id;
  } catch {
    // plain text log format
  }
  return /\bAW_[A-Za-z0-9]+/.exec(line)?.[0] ?? "unknown";
}
