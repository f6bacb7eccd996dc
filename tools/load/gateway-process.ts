/**
 * One gateway instance as a child process running the built bundle (dist/gateway/main.js),
 * configured as PM2 would run it but on free loopback ports. Used by the load test, the
 * soak and the LiveKit room bench.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import path from "node:path";
import { ROOT } from "../pm2.ts";
import { killOnExit } from "../sim/exit-guard.ts";
import { freePort } from "./stats.ts";

export interface GatewayProcess {
  readonly id: number;
  readonly healthUrl: string;
  readonly process: ChildProcess;
}

export interface GatewayProcessOptions {
  readonly id: number;
  readonly brokerUrl: string;
  readonly brokerPassword: string;
  readonly workers: number | string;
  /** Extra environment (LIVEKIT_*, LOG_LEVEL, ...). */
  readonly env?: Record<string, string>;
  readonly stdio?: StdioOptions;
  /** Node options before the script (--cpu-prof, ...): NODE_OPTIONS refuses some. */
  readonly nodeArgs?: readonly string[];
  /** The bundle to run; this tree's dist/ by default (bench:rooms --compare-dist). */
  readonly dist?: string;
}

export async function spawnGateway(o: GatewayProcessOptions): Promise<GatewayProcess> {
  const healthPort = await freePort();
  const main = path.join(o.dist ?? path.join(ROOT, "dist"), "gateway/main.js");
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), main], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: "production",
      INSTANCE_ID: String(o.id),
      UDP_PORT: "0",
      UDP_BIND: "127.0.0.1",
      PUBLIC_HOST: "127.0.0.1",
      HEALTH_PORT: String(healthPort),
      WORKER_COUNT: String(o.workers),
      MQTT_URL: o.brokerUrl,
      MQTT_PASSWORD: o.brokerPassword,
      LOG_LEVEL: "warn",
      ...o.env,
    },
    stdio: o.stdio ?? ["ignore", "ignore", "inherit"],
  });
  // Its media process (voice-media) dies with it: PR_SET_PDEATHSIG.
  killOnExit(child);
  return { id: o.id, healthUrl: `http://127.0.0.1:${healthPort}`, process: child };
}

/** SIGTERM (the gateway drains), resolved when it has exited. */
export function stopGateway(g: { process?: ChildProcess | undefined }): Promise<void> {
  return new Promise((resolve) => {
    const p = g.process;
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once("exit", () => resolve());
    p.kill("SIGTERM");
  });
}
