/**
 * The instance's UDP socket (real, on loopback): a send that dgram refuses on the spot
 * reaches the caller's error callback, to be counted, instead of throwing inside the
 * downstream path's promise callbacks.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UdpTransport } from "../src/transport/udp.ts";

describe("UdpTransport.send", () => {
  let udp: UdpTransport;

  before(async () => {
    udp = await UdpTransport.bind(0, "127.0.0.1");
  });

  after(() => udp.close());

  it("a send to port 0 (dgram throws ERR_SOCKET_BAD_PORT) calls onError once and does not throw", () => {
    let failures = 0;
    assert.doesNotThrow(() => udp.send(Buffer.from("frame"), 0, "127.0.0.1", () => failures++));
    assert.equal(failures, 1);
  });
});

describe("UdpTransport.send after close", () => {
  it("a send on a closed socket (encodes still in flight at shutdown) calls onError once and does not throw", async () => {
    const udp = await UdpTransport.bind(0, "127.0.0.1");
    const port = udp.port;
    await udp.close();
    let failures = 0;
    assert.doesNotThrow(() => udp.send(Buffer.from("frame"), port, "127.0.0.1", () => failures++));
    assert.equal(failures, 1);
  });
});
