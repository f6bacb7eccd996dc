/**
 * The local box's development OTA endpoint: a thin HTTP server around ota-response.ts.
 * It reads at most MAX_OTA_BODY_BYTES of body, answers, counts every request by outcome
 * (those Node's HTTP server refuses itself too: ops/http-refusals.ts) and reports each one
 * it answers to `onAnswer` (the local box prints them).
 *
 * Paths: firmware posts to whatever OTA URL it was built or configured with; the usual
 * ones are xinnan's `/xiaozhi/ota/` and Bunny's `/toy/ota/`, so both are served.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { countHttpRefusals, type HttpRefusal, timeoutCheckingIntervalMs } from "../ops/http-refusals.ts";
import {
  answerOta,
  endpointToUrl,
  MAX_OTA_BODY_BYTES,
  type OtaAnswer,
  type OtaRefusal,
  type OtaSettings,
  refuseOta,
} from "./ota-response.ts";

export const OTA_PATHS: readonly string[] = [
  "/xiaozhi/ota/",
  "/xiaozhi/ota",
  "/toy/ota/",
  "/toy/ota",
  "/ota/",
  "/ota",
];

export interface OtaServerOptions {
  readonly settings: OtaSettings;
  /** Default 127.0.0.1: loopback unless the box is told to face the LAN. */
  readonly host?: string;
  /** Default 0: any free port. */
  readonly port?: number;
  readonly now?: () => number;
  readonly onAnswer?: (answer: OtaAnswer, remote: string | undefined) => void;
  /** How long one request may take; default 10 s (its headers: 5 s, or this if less). */
  readonly requestTimeoutMs?: number;
}

/** Why the OTA refused a request: its own answers, an unknown path, or Node's refusals. */
export type OtaServerRefusal = OtaRefusal | "not_found" | HttpRefusal;

export interface OtaStats {
  served: number;
  refused: Partial<Record<OtaServerRefusal, number>>;
}

export interface OtaServer {
  /** The OTA URL to give firmware, e.g. `http://127.0.0.1:8002/xiaozhi/ota/`. */
  readonly url: string;
  readonly port: number;
  readonly stats: OtaStats;
  close(): Promise<void>;
}

export async function startOtaServer(options: OtaServerOptions): Promise<OtaServer> {
  // Firmware splits the endpoint at its first ':' (docs/device-protocol.md 1.4): one it would
  // read as another host (an IPv6 address, bracketed or not) is never handed to a device.
  try {
    endpointToUrl(options.settings.mqttEndpoint);
  } catch (err) {
    throw new RangeError(
      `OTA settings: ${(err as Error).message}; firmware splits host:port at the first ':', so give a host name or an IPv4 address`,
    );
  }
  const host = options.host ?? "127.0.0.1";
  const now = options.now ?? Date.now;
  const stats: OtaStats = { served: 0, refused: {} };
  const count = (reason: OtaServerRefusal) => {
    stats.refused[reason] = (stats.refused[reason] ?? 0) + 1;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    if (!OTA_PATHS.includes(pathname)) {
      count("not_found");
      send(res, 404, { error: "Not found" }, true);
      req.resume();
      return;
    }
    readBody(req, (body) => {
      const answer =
        body === "too_large"
          ? refuseOta("body_too_large")
          : answerOta(
              {
                method: req.method ?? "",
                headers: req.headers,
                body,
                remoteAddress: req.socket.remoteAddress,
              },
              options.settings,
              now(),
            );
      if (answer.ok) stats.served++;
      else count(answer.refusal);
      const headers: Record<string, string> =
        !answer.ok && answer.status === 405 ? { allow: "POST, GET" } : {};
      // After an oversized body the rest of it is still on the socket: close it.
      send(res, answer.status, answer.body, body === "too_large", headers);
      options.onAnswer?.(answer, req.socket.remoteAddress);
    });
  };
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const headersTimeoutMs = Math.min(5_000, requestTimeoutMs);
  // Checked against the shorter of the two timeouts (http-refusals.ts says why).
  const server = createServer(
    { connectionsCheckingInterval: timeoutCheckingIntervalMs(headersTimeoutMs) },
    handle,
  );
  // A slow or silent client cannot hold a socket for long.
  server.requestTimeout = requestTimeoutMs;
  server.headersTimeout = headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  countHttpRefusals(server, count);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/xiaozhi/ota/`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Collects the body up to the limit; a larger one (declared or sent) is refused unread. */
function readBody(req: IncomingMessage, done: (body: Buffer | "too_large") => void): void {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_OTA_BODY_BYTES) {
    req.resume();
    done("too_large");
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  req.on("data", (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > MAX_OTA_BODY_BYTES) {
      finished = true;
      done("too_large");
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (finished) return;
    finished = true;
    done(Buffer.concat(chunks));
  });
  req.on("error", () => {
    finished = true;
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: object,
  close: boolean,
  extra: Record<string, string> = {},
): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(json),
    ...(close ? { connection: "close" } : {}),
    ...extra,
  });
  res.end(json);
}
