import path from "node:path";
import { ROOT } from "../pm2.ts";

/**
 * Where the box keeps what it writes: its pid file, signing key, broker log, env file and
 * PM2 home. `--run-dir` moves all of it, and the bundle too, elsewhere: a test runs a box
 * beside a developer's `npm start` without touching its PM2, its key or its dist/.
 */
export interface RunPaths {
  readonly dir: string;
  readonly pidFile: string;
  readonly keyFile: string;
  readonly brokerLog: string;
  readonly envFile: string;
  readonly pm2Home: string;
  /** The bundle PM2 runs: dist/ by default (README: "It builds the bundle into dist/"). */
  readonly dist: string;
}

export function runPaths(runDir: string | undefined): RunPaths {
  const dir = runDir === undefined ? path.join(ROOT, ".run") : path.resolve(runDir);
  return {
    dir,
    pidFile: path.join(dir, "local-box.pid"),
    keyFile: path.join(dir, "device-signing-key"),
    brokerLog: path.join(dir, "broker.log"),
    envFile: path.join(dir, "gateway.env"),
    pm2Home: path.join(dir, "pm2"),
    dist: runDir === undefined ? path.join(ROOT, "dist") : path.join(dir, "dist"),
  };
}
