/**
 * The refusals Node's HTTP server makes before any request handler runs ('clientError'):
 * a request not complete within its timeout (408), headers over Node's limit (431), chunk
 * extensions over its limit (413), bytes that do not parse as HTTP (400), and a client
 * closing or resetting its connection before its request was complete. Without a listener Node answers them itself and
 * nothing counts them; this counts each by reason, then answers as Node would have.
 */
import type { Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

export type HttpRefusal =
  | "request_timeout"
  | "headers_too_large"
  | "chunk_extensions_too_large"
  | "bad_http_request"
  | "client_gone";

/** Node's own answers (lib/_http_server.js), so a client sees what it saw before. */
const ANSWERS: Record<Exclude<HttpRefusal, "client_gone">, string> = {
  request_timeout: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
  headers_too_large: "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
  chunk_extensions_too_large: "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n",
  bad_http_request: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
};

/** The reason for one 'clientError', by its code. */
export function httpRefusalOf(code: string | undefined): HttpRefusal {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return "request_timeout";
    case "HPE_HEADER_OVERFLOW":
      return "headers_too_large";
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return "chunk_extensions_too_large";
    // The connection reset, or closed (end of input in the middle of a request).
    case "ECONNRESET":
    case "HPE_INVALID_EOF_STATE":
      return "client_gone";
    default:
      return "bad_http_request";
  }
}

/**
 * How often a server should check its connections' timeouts (createServer's
 * connectionsCheckingInterval): Node checks every 30 s by default, so a request trickled a
 * byte at a time held its socket 30 s whatever the timeout. A tenth of the timeout keeps the
 * 408 at most 10 % late.
 */
export function timeoutCheckingIntervalMs(timeoutMs: number): number {
  return Math.max(10, Math.floor(timeoutMs / 10));
}

/** Counts every refusal `server` makes itself, by reason, and answers it as Node does. */
export function countHttpRefusals(server: Server, count: (reason: HttpRefusal) => void): void {
  // The response in flight on each socket: a refusal after its headers went out (a timeout
  // while the rest of an oversized body arrives) must not write a second status line.
  const inFlight = new WeakMap<Duplex, ServerResponse>();
  server.on("request", (req, res: ServerResponse) => {
    inFlight.set(req.socket, res);
    res.on("finish", () => {
      if (inFlight.get(req.socket) === res) inFlight.delete(req.socket);
    });
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    const reason = httpRefusalOf(err.code);
    count(reason);
    if (reason !== "client_gone" && socket.writable && !inFlight.get(socket)?.headersSent) {
      socket.write(ANSWERS[reason]);
    }
    // As Node does: the answer is written at once on a socket; nothing more is read.
    socket.destroy();
  });
}
