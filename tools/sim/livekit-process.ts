/**
 * Starts a real LiveKit server (built by scripts/build-livekit.sh into
 * .cache/bin/livekit-server) on free loopback ports, and stops it. For tests that join
 * a device session to a LiveKit room.
 *
 * Everything it opens is on 127.0.0.1: the config below was checked against the
 * v1.13.5 sources (pkg/config, mediatransportutil/pkg/rtcconfig) and with `ss -lntup`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { killOnExit } from "./exit-guard.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const LIVEKIT_BINARY = path.join(root, ".cache/bin/livekit-server");
const BUILD_SCRIPT = path.join(root, "scripts/build-livekit.sh");

export interface LiveKitProcess {
  /** Signalling URL for rtc-node's Room.connect: ws://127.0.0.1:<port> */
  readonly url: string;
  /** The same port over HTTP, for livekit-server-sdk's RoomServiceClient. */
  readonly httpUrl: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface LiveKitStartOptions {
  /** Where the server's logs (stdout and stderr) go; default: discarded. */
  readonly output?: "inherit" | "ignore";
}

/** The version pinned in the build script, so that it is written down only once. */
function pinnedVersion(): string {
  const m = /^LIVEKIT_VERSION=(\S+)$/m.exec(readFileSync(BUILD_SCRIPT, "utf8"));
  if (!m?.[1]) throw new Error(`no LIVEKIT_VERSION= line in ${BUILD_SCRIPT}`);
  return m[1];
}

/** Builds the server if it is missing or not the pinned version (about 2 min on 2 cores). */
export function ensureLiveKitBinary(): void {
  if (existsSync(LIVEKIT_BINARY)) {
    const v = spawnSync(LIVEKIT_BINARY, ["--version"], { encoding: "utf8" });
    if (v.stdout.trim() === `livekit-server version ${pinnedVersion()}`) return;
  }
  const res = spawnSync("bash", [BUILD_SCRIPT], { stdio: ["ignore", "inherit", "inherit"] });
  if (res.status !== 0) throw new Error("building livekit-server failed (see the output above)");
}

/** A port that was free a moment ago; the server binds it right after (small race, fine for tests). */
function freePort(kind: "tcp" | "udp"): Promise<number> {
  return new Promise((resolve, reject) => {
    if (kind === "tcp") {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    } else {
      const sock = createSocket("udp4");
      sock.once("error", reject);
      sock.bind(0, "127.0.0.1", () => {
        const { port } = sock.address();
        sock.close(() => resolve(port));
      });
    }
  });
}

async function waitUntilServing(httpUrl: string, child: ChildProcess, logTail: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `livekit-server exited (${child.exitCode ?? child.signalCode}) before serving:\n${logTail()}`,
      );
    }
    try {
      const res = await fetch(httpUrl, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`livekit-server did not serve ${httpUrl} within 15 s:\n${logTail()}`);
}

export async function startLiveKit(options: LiveKitStartOptions = {}): Promise<LiveKitProcess> {
  ensureLiveKitBinary();
  const port = await freePort("tcp");
  const udpPort = await freePort("udp");
  const apiKey = "test-key";
  // 43 characters: outside dev mode the server warns about secrets under 32.
  const apiSecret = randomBytes(32).toString("base64url");
  const config = {
    development: true,
    port,
    bind_addresses: ["127.0.0.1"],
    keys: { [apiKey]: apiSecret },
    logging: { level: "info" },
    rtc: {
      // One UDP port, muxed; the mux binds each local IP that the `ips` filter lets
      // through, so only 127.0.0.1 (loopback must be enabled for that IP to count).
      udp_port: udpPort,
      ips: { includes: ["127.0.0.1/32"] },
      enable_loopback_candidate: true,
      // 0 turns ICE/TCP off: its listener binds every interface (no IP option), and
      // the default is 7881, which would clash between servers.
      tcp_port: 0,
      // An explicit node IP also stops the server asking public STUN servers for one.
      node_ip: "127.0.0.1",
      use_external_ip: false,
    },
    turn: { enabled: false },
  };
  const child = spawn(LIVEKIT_BINARY, [], {
    // Passed in the environment rather than a file or argv, so the secret neither
    // lands on disk nor shows in `ps`. The env is otherwise minimal on purpose: the
    // server reads LIVEKIT_*, NODE_IP, UDP_PORT, REDIS_HOST... as config overrides.
    env: { PATH: process.env.PATH ?? "", LIVEKIT_CONFIG: stringify(config) },
    stdio: ["ignore", options.output ?? "pipe", options.output ?? "pipe"],
  });
  killOnExit(child);
  // Keep the last lines of output for the error message if it fails to start.
  const tail: string[] = [];
  const keep = (chunk: Buffer): void => {
    tail.push(chunk.toString());
    if (tail.length > 20) tail.shift();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);

  const httpUrl = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    // On SIGTERM LiveKit waits, without limit, for every participant to leave; a second
    // signal makes it stop without waiting. SIGKILL is the last resort.
    const timers = [
      setTimeout(() => child.kill("SIGTERM"), 1_000),
      setTimeout(() => child.kill("SIGKILL"), 5_000),
    ];
    await exited;
    for (const t of timers) clearTimeout(t);
  };
  try {
    await waitUntilServing(httpUrl, child, () => tail.join(""));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `ws://127.0.0.1:${port}`, httpUrl, apiKey, apiSecret, process: child, stop };
}
