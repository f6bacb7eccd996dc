/**
 * Requests Node's HTTP server refuses itself (unparsable, headers or chunk extensions too
 * large, too slow, the client gone)
 * and the verifier's unknown paths are counted by reason, on the device verifier (`/stats`)
 * and on the OTA (its stats), and still answered as Node answers them. Raw sockets on
 * loopback, as slow-requests.test.ts.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createVerifier, type Verifier } from "../src/auth/verifier-server.ts";
import { createLogger } from "../src/ops/log.ts";
import { type OtaServer, startOtaServer } from "../src/ota/ota-server.ts";

const TIMEOUT_MS = 300;
/** Over Node's default 16 KiB of headers. */
const HUGE_HEADER = `X-Big: ${"a".repeat(20_000)}\r\n`;
/** A chunked body whose first chunk's extension is over Node's 16 KiB limit for them. */
const HUGE_CHUNK_EXTENSION = `Transfer-Encoding: chunked\r\n\r\n1;ext=${"a".repeat(20_000)}\r\na\r\n0\r\n\r\n`;

/** Sends `text` and resolves with what the server answered once it closes the socket. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      answer += chunk;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(answer));
    socket.write(text);
  });
}

describe("the verifier counts the requests Node refuses, and unknown paths", () => {
  let verifier: Verifier;
  let port: number;
  before(async () => {
    verifier = createVerifier({
      signingKey: "k",
      log: createLogger("silent", 0),
      requestTimeoutMs: TIMEOUT_MS,
    });
    port = await verifier.listen(0, "127.0.0.1");
  });
  after(async () => {
    await verifier.close();
  });

  /** The `refused` counters of GET /stats. */
  const refused = async (): Promise<Record<string, number>> => {
    const stats = (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as {
      refused?: Record<string, number>;
    };
    return stats.refused ?? {};
  };

  it("bytes that are not HTTP: 400, counted bad_http_request", async () => {
    const was = (await refused()).bad_http_request ?? 0;
    assert.match(await exchange(port, "NOT HTTP AT ALL\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.equal((await refused()).bad_http_request, was + 1);
  });

  it("headers over 16 KiB: 431, counted headers_too_large", async () => {
    const was = (await refused()).headers_too_large ?? 0;
    const answer = await exchange(port, `POST /mqtt/auth HTTP/1.1\r\nHost: v\r\n${HUGE_HEADER}\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.equal((await refused()).headers_too_large, was + 1);
  });

  it("chunk extensions over 16 KiB: 413, counted chunk_extensions_too_large", async () => {
    const was = (await refused()).chunk_extensions_too_large ?? 0;
    const answer = await exchange(port, `POST /mqtt/auth HTTP/1.1\r\nHost: v\r\n${HUGE_CHUNK_EXTENSION}`);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.equal((await refused()).chunk_extensions_too_large, was + 1);
  });

  it("headers not complete within the timeout: 408, counted request_timeout", async () => {
    const was = (await refused()).request_timeout ?? 0;
    assert.match(await exchange(port, "POST /mqtt/auth HTTP/1.1\r\nHost: v\r\n"), /^HTTP\/1\.1 408 /);
    assert.equal((await refused()).request_timeout, was + 1);
  });

  /** Opens a request, leaves it with `leave`, and resolves once the server has refused it. */
  const leaveMidRequest = async (leave: (socket: Socket) => void) => {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    const refusal = once(verifier.server, "clientError");
    socket.write("POST /mqtt/auth HTTP/1.1\r\nHost: v\r\n", () => leave(socket));
    await refusal;
  };

  it("a client closing its connection mid-request: counted client_gone", async () => {
    const was = (await refused()).client_gone ?? 0;
    await leaveMidRequest((socket) => socket.end());
    assert.equal((await refused()).client_gone, was + 1);
  });

  it("a client resetting its connection mid-request: counted client_gone", async () => {
    const was = (await refused()).client_gone ?? 0;
    await leaveMidRequest((socket) => socket.resetAndDestroy());
    assert.equal((await refused()).client_gone, was + 1);
  });

  it("an unknown path: 404, counted not_found", async () => {
    const was = (await refused()).not_found ?? 0;
    assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
    assert.equal((await refused()).not_found, was + 1);
  });
});

describe("the OTA counts the requests Node refuses", () => {
  let ota: OtaServer;
  before(async () => {
    ota = await startOtaServer({
      settings: { mqttEndpoint: "192.0.2.10:1883", signingKey: "k" },
      requestTimeoutMs: TIMEOUT_MS,
    });
  });
  after(async () => {
    await ota.close();
  });

  it("bytes that are not HTTP: 400, counted bad_http_request", async () => {
    assert.match(await exchange(ota.port, "NOT HTTP AT ALL\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.equal(ota.stats.refused.bad_http_request, 1);
  });

  it("headers over 16 KiB: 431, counted headers_too_large", async () => {
    const answer = await exchange(ota.port, `POST /xiaozhi/ota/ HTTP/1.1\r\nHost: o\r\n${HUGE_HEADER}\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.equal(ota.stats.refused.headers_too_large, 1);
  });

  it("chunk extensions over 16 KiB: 413, counted chunk_extensions_too_large", async () => {
    const answer = await exchange(
      ota.port,
      `POST /xiaozhi/ota/ HTTP/1.1\r\nHost: o\r\n${HUGE_CHUNK_EXTENSION}`,
    );
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.equal(ota.stats.refused.chunk_extensions_too_large, 1);
  });

  it("headers not complete within the timeout: 408, counted request_timeout", async () => {
    assert.match(await exchange(ota.port, "POST /xiaozhi/ota/ HTTP/1.1\r\nHost: o\r\n"), /^HTTP\/1\.1 408 /);
    assert.equal(ota.stats.refused.request_timeout, 1);
  });
});
