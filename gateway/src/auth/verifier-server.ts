/**
 * The device verifier's HTTP side: EMQX's HTTP authenticator (cloud-init/emqx/emqx.conf)
 * posts every device CONNECT here and acts on the answer.
 *
 *   POST /mqtt/auth  {"clientid","username","password"}
 *     -> 200 {"result":"allow"} | 200 {"result":"deny"}
 *     -> 400 {"result":"deny"}   body not a JSON object of three strings
 *     -> 413 {"result":"deny"}   body over 8 KiB
 *     -> 405 {"result":"deny"}   another method
 *   GET /stats       the counters below, as JSON
 *   anything else    404, counted as refused not_found
 *
 * Every answer is counted by reason, and so is every request Node's HTTP server refuses
 * itself (ops/http-refusals.ts: timeouts, oversized headers, bytes that are not HTTP): the
 * `refused` counters. Logs carry the client id and the reason, never the username (it
 * holds the device's IP), the password or the key.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { countHttpRefusals, type HttpRefusal, timeoutCheckingIntervalMs } from "../ops/http-refusals.ts";
import type { Logger } from "../ops/log.ts";
import { LogLimiter } from "../ops/log.ts";
import { type CredentialRejection, verifyDeviceCredentials } from "./device-credentials.ts";

export const MAX_REQUEST_BYTES = 8192;
export const AUTH_PATH = "/mqtt/auth";

export type AllowReason = "signed" | "insecure_dev";
export type DenyReason = CredentialRejection | "bad_request" | "request_too_large" | "method_not_allowed";
/** Requests that are no authentication request: refused before any decision. */
export type VerifierRefusal = HttpRefusal | "not_found";

export interface VerifierOptions {
  /** Undefined: insecure development mode, every device is allowed. */
  readonly signingKey: string | undefined;
  readonly log: Logger;
  /** How long one request may take, headers and body; default 5000 (EMQX gives up at 5 s). */
  readonly requestTimeoutMs?: number;
}

export class VerifierStats {
  readonly allowed = new Map<AllowReason, number>();
  readonly denied = new Map<DenyReason, number>();
  readonly refused = new Map<VerifierRefusal, number>();

  allow(reason: AllowReason): void {
    this.allowed.set(reason, (this.allowed.get(reason) ?? 0) + 1);
  }

  deny(reason: DenyReason): void {
    this.denied.set(reason, (this.denied.get(reason) ?? 0) + 1);
  }

  countRefusal(reason: VerifierRefusal): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  get total(): number {
    let n = 0;
    for (const v of this.allowed.values()) n += v;
    for (const v of this.denied.values()) n += v;
    for (const v of this.refused.values()) n += v;
    return n;
  }

  toJSON(): {
    allowed: Record<string, number>;
    denied: Record<string, number>;
    refused: Record<string, number>;
  } {
    return {
      allowed: Object.fromEntries(this.allowed),
      denied: Object.fromEntries(this.denied),
      refused: Object.fromEntries(this.refused),
    };
  }
}

export type AuthDecision =
  | {
      readonly status: 200;
      readonly result: "allow";
      readonly reason: AllowReason;
      readonly clientId: string;
    }
  | {
      readonly status: 200 | 400 | 405 | 413;
      readonly result: "deny";
      readonly reason: DenyReason;
      readonly clientId: string | undefined;
    };

const TOO_LARGE: AuthDecision = {
  status: 413,
  result: "deny",
  reason: "request_too_large",
  clientId: undefined,
};
const METHOD_NOT_ALLOWED: AuthDecision = {
  status: 405,
  result: "deny",
  reason: "method_not_allowed",
  clientId: undefined,
};

/** The decision for one request body (pure apart from the HMAC): what the server answers. */
export function decideAuth(signingKey: string | undefined, body: Buffer): AuthDecision {
  if (body.length > MAX_REQUEST_BYTES) return TOO_LARGE;
  let value: unknown;
  try {
    // Fatal: a lenient decode makes every byte that is not UTF-8 U+FFFD, so ids differing
    // in those bytes would read (and verify) alike. JSON text is UTF-8 (RFC 8259 section 8.1).
    // ignoreBOM keeps a byte order mark for JSON.parse to refuse, as it always has.
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body));
  } catch {
    return { status: 400, result: "deny", reason: "bad_request", clientId: undefined };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { status: 400, result: "deny", reason: "bad_request", clientId: undefined };
  }
  const { clientid, username, password } = value as Record<string, unknown>;
  if (typeof clientid !== "string" || typeof username !== "string" || typeof password !== "string") {
    return { status: 400, result: "deny", reason: "bad_request", clientId: undefined };
  }
  if (signingKey === undefined)
    return { status: 200, result: "allow", reason: "insecure_dev", clientId: clientid };
  const verdict = verifyDeviceCredentials(signingKey, { clientId: clientid, username, password });
  return verdict.ok
    ? { status: 200, result: "allow", reason: "signed", clientId: clientid }
    : { status: 200, result: "deny", reason: verdict.reason, clientId: clientid };
}

export interface Verifier {
  readonly server: Server;
  readonly stats: VerifierStats;
  /** Resolves with the bound port. */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const { log, signingKey } = options;
  const stats = new VerifierStats();
  const limiter = new LogLimiter();

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  /** Counts and logs the decision, then answers it. */
  const decide = (res: ServerResponse, decision: AuthDecision) => {
    const clientId = decision.clientId?.slice(0, 128);
    if (decision.result === "allow") {
      stats.allow(decision.reason);
      log.debug({ event: "device_allowed", clientId, reason: decision.reason }, "device allowed");
    } else {
      stats.deny(decision.reason);
      limiter.run(`deny:${decision.reason}`, (suppressed) =>
        log.warn(
          {
            event: "device_denied",
            clientId,
            reason: decision.reason,
            ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}),
          },
          "device denied",
        ),
      );
    }
    answer(res, decision.status, { result: decision.result });
  };

  /** Counts and logs a request that is no authentication request. */
  const refuse = (reason: VerifierRefusal) => {
    stats.countRefusal(reason);
    limiter.run(`refuse:${reason}`, (suppressed) =>
      log.warn(
        {
          event: "request_refused",
          reason,
          ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}),
        },
        "request refused",
      ),
    );
  };

  const handleAuth = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        tooLarge = true;
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => decide(res, tooLarge ? TOO_LARGE : decideAuth(signingKey, Buffer.concat(chunks))));
    req.on("error", () => res.destroy());
  };

  const timeoutMs = options.requestTimeoutMs ?? 5000;
  const server = createServer(
    { connectionsCheckingInterval: timeoutCheckingIntervalMs(timeoutMs) },
    (req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path === AUTH_PATH) {
        if (req.method !== "POST") return decide(res, METHOD_NOT_ALLOWED);
        return handleAuth(req, res);
      }
      if (path === "/stats" && req.method === "GET") {
        return answer(res, 200, {
          mode: signingKey === undefined ? "insecure_dev" : "verify",
          ...stats.toJSON(),
        });
      }
      refuse("not_found");
      answer(res, 404, { error: "not found" });
    },
  );
  countHttpRefusals(server, refuse);
  // EMQX times out after 5 s; a client that trickles its request is cut off then too.
  server.requestTimeout = timeoutMs;
  server.headersTimeout = timeoutMs;

  return {
    server,
    stats,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address();
          resolve(typeof address === "object" && address ? address.port : port);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
