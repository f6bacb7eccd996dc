/**
 * For the tests of first boot's bundle step: an HTTP server on loopback that serves one
 * object the way the bucket would, and a runner of the real fetch-bundle.sh against it.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const FETCH_SCRIPT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "gateway",
  "fetch-bundle.sh",
);

export interface ObjectServer {
  /** The URL of the object (same path as in the bucket URL). */
  readonly url: string;
  /** Requests seen, by path. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** Serves `bytes` at `objectPath` on 127.0.0.1; everything else is 404. */
export async function serveObject(objectPath: string, bytes: Buffer): Promise<ObjectServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === objectPath) {
      res.writeHead(200, { "content-type": "application/gzip", "content-length": bytes.length });
      res.end(bytes);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}${objectPath}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface FetchResult {
  readonly code: number | null;
  readonly output: string;
}

/** Runs fetch-bundle.sh as first boot would, with the settings given in the environment. */
export function runFetchBundle(env: {
  BUNDLE_URL: string;
  BUNDLE_SHA256: string;
  INSTALL_DIR: string;
  BUNDLE_RETRIES?: string;
}): Promise<FetchResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [FETCH_SCRIPT], {
      // No bootstrap.env here: the settings come from the environment.
      env: { PATH: process.env.PATH, BOOTSTRAP_ENV: "/dev/null", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, output }));
  });
}
