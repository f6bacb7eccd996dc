/**
 * Starts the local broker (broker/, built to .cache/bin/local-broker) on a free loopback
 * port and stops it. Used by the tests and the local box.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { killOnExit } from "./exit-guard.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BROKER_BINARY = path.join(root, ".cache/bin/local-broker");

/** How long the broker gets to end after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;

export interface BrokerProcess {
  readonly url: string;
  readonly port: number;
  /** `mqtts://127.0.0.1:<port>` when started with `tls`. */
  readonly tlsUrl: string | undefined;
  readonly gatewayPassword: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface BrokerStartOptions {
  /** Default 0: any free port. */
  readonly port?: number;
  /** Default 127.0.0.1; the local box passes its --public-host to face the LAN. */
  readonly host?: string;
  readonly gatewayPassword?: string;
  /** The OTA's HMAC key: with it, devices must present signed credentials. */
  readonly deviceSigningKey?: string;
  /** PEM files for an MQTT-over-TLS listener on another free loopback port. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Where the broker's stderr (JSON logs) goes; default: discarded. */
  readonly stderr?: "inherit" | "ignore" | number;
  /**
   * Runs the broker in a process group of its own, out of the terminal's reach: the local
   * box's Ctrl-C (SIGINT to the terminal's whole foreground group) must not end it before
   * the gateways have drained through it; the box stops it last (tools/local-box.ts).
   */
  readonly detached?: boolean;
}

/** Builds the broker binary if it is missing (go build caches the work). */
export function ensureBrokerBinary(): void {
  if (existsSync(BROKER_BINARY)) return;
  const res = spawnSync("go", ["build", "-o", BROKER_BINARY, "."], {
    cwd: path.join(root, "broker"),
    stdio: "inherit",
  });
  if (res.status !== 0) throw new Error("building the local broker failed (is Go installed?)");
}

export async function startBroker(options: BrokerStartOptions = {}): Promise<BrokerProcess> {
  ensureBrokerBinary();
  const host = options.host ?? "127.0.0.1";
  const gatewayPassword = options.gatewayPassword ?? "local-gateway-password";
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BROKER_ADDR: `${hostPort(host, options.port ?? 0)}`,
    BROKER_GATEWAY_PASSWORD: gatewayPassword,
  };
  if (options.deviceSigningKey) env.BROKER_DEVICE_SIGNING_KEY = options.deviceSigningKey;
  else delete env.BROKER_DEVICE_SIGNING_KEY;
  for (const name of ["BROKER_TLS_ADDR", "BROKER_TLS_CERT", "BROKER_TLS_KEY"]) delete env[name];
  if (options.tls) {
    env.BROKER_TLS_ADDR = "127.0.0.1:0";
    env.BROKER_TLS_CERT = options.tls.certFile;
    env.BROKER_TLS_KEY = options.tls.keyFile;
  }
  const child = spawn(BROKER_BINARY, [], {
    env,
    stdio: ["ignore", "pipe", options.stderr ?? "ignore"],
    detached: options.detached ?? false,
  });
  killOnExit(child);
  const { port, tlsPort } = await new Promise<{ port: number; tlsPort?: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("broker did not start within 10 s")), 10_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with code ${code} before listening`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      try {
        const ev = JSON.parse(line) as { event?: string; addr?: string; tls_addr?: string };
        if (ev.event === "listening" && ev.addr) {
          clearTimeout(timer);
          const portOf = (addr: string) => Number(addr.split(":").pop());
          resolve({ port: portOf(ev.addr), ...(ev.tls_addr ? { tlsPort: portOf(ev.tls_addr) } : {}) });
        }
      } catch {
        // not a JSON line: ignore
      }
    });
  });
  return {
    url: `mqtt://${hostPort(host, port)}`,
    port,
    tlsUrl: tlsPort === undefined ? undefined : `mqtts://127.0.0.1:${tlsPort}`,
    gatewayPassword,
    process: child,
    // SIGKILL after a grace: a broker that does not end on SIGTERM must not hold its
    // caller's stop (the local box's teardown) forever.
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
        child.once("exit", () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
