/**
 * A client that trickles its request (slowloris) holds a socket of the device verifier or of
 * the OTA no longer than their request timeouts. Node enforces those only when it checks
 * its connections, every 30 s by default, whatever the timeout says.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { createVerifier } from "../src/auth/verifier-server.ts";
import { createLogger } from "../src/ops/log.ts";
import { startOtaServer } from "../src/ota/ota-server.ts";

const TIMEOUT_MS = 300;
/** Well past the timeout and its checking interval; far short of Node's default 30 s. */
const DEADLINE_MS = 2000;

/**
 * Sends `head`, then one byte every 50 ms; resolves when the server closes the socket, with
 * what it answered, or after DEADLINE_MS with `closed: false`.
 */
function trickle(port: number, head: string): Promise<{ closed: boolean; answer: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      answer += text;
    });
    socket.on("error", () => {});
    socket.write(head);
    const drip = setInterval(() => socket.write("a"), 50);
    const finish = (closed: boolean) => {
      clearInterval(drip);
      clearTimeout(deadline);
      socket.destroy();
      resolve({ closed, answer });
    };
    const deadline = setTimeout(() => finish(false), DEADLINE_MS);
    socket.on("close", () => finish(true));
  });
}

describe("slow requests are cut off at their timeout", () => {
  it("the verifier: a body trickled a byte at a time gets 408 and the socket closed", async () => {
    const verifier = createVerifier({
      signingKey: "k",
      log: createLogger("silent", 0),
      requestTimeoutMs: TIMEOUT_MS,
    });
    const port = await verifier.listen(0, "127.0.0.1");
    try {
      const r = await trickle(port, "POST /mqtt/auth HTTP/1.1\r\nHost: v\r\nContent-Length: 1000\r\n\r\n");
      assert.ok(r.closed, `socket still open ${DEADLINE_MS} ms after a ${TIMEOUT_MS} ms timeout`);
      assert.match(r.answer, /^HTTP\/1\.1 408 /);
    } finally {
      await verifier.close();
    }
  });

  it("the OTA: headers trickled a byte at a time get 408 and the socket closed", async () => {
    const ota = await startOtaServer({
      settings: { mqttEndpoint: "192.0.2.10:1883", signingKey: "k" },
      requestTimeoutMs: TIMEOUT_MS,
    });
    try {
      const r = await trickle(ota.port, "POST /xiaozhi/ota/ HTTP/1.1\r\nHost: o\r\nX-Slow: ");
      assert.ok(r.closed, `socket still open ${DEADLINE_MS} ms after a ${TIMEOUT_MS} ms timeout`);
      assert.match(r.answer, /^HTTP\/1\.1 408 /);
    } finally {
      await ota.close();
    }
  });
});
