/**
 * An instance whose own broker connection is cut (a network fault) while it and the broker
 * live: the broker publishes its will, its peers take its sessions for dead and tell their
 * devices goodbye (docs/reliability.md, rule 3), and the instance reconnects. Its sessions
 * are over on the device side then; they used to live on here until their idle timeout,
 * still claimed (so counted as load everywhere) and with an agent that could still send
 * `tts`/`stt` to a device that had moved on (firmware checks the session id on goodbye only).
 * Real local broker; instance 1 reaches it through a relay that the test cuts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { RunningGateway } from "../src/app.ts";
import { type BrokerProxy, startBrokerProxy } from "./support/broker-proxy.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

describe("an instance whose broker connection is cut while it lives", () => {
  let stack: Stack;
  let proxy: BrokerProxy;
  let cut: RunningGateway;
  let peer: RunningGateway;

  before(async () => {
    stack = await startStack();
    proxy = await startBrokerProxy(stack.broker.port);
    const overrides = { WORKER_COUNT: "1", HELLO_BALANCE_SLACK: "0" };
    cut = await stack.startGateway({ ...overrides, INSTANCE_ID: "1", MQTT_URL: proxy.url });
    peer = await stack.startGateway({ ...overrides, INSTANCE_ID: "2" });
    await eventually(
      () => cut.gateway.peers.has(2) && peer.gateway.peers.has(1),
      10_000,
      "both instances seeing each other",
    );
  });
  after(async () => {
    await stack?.stop();
    await proxy?.stop();
  });

  it("ends the sessions its peers told goodbye when its will went out, and is known up again", async () => {
    const d = await stack.device();
    // The hello as the broker would hand it to instance 1.
    const reply = d.waitForMessage((m) => m.type === "hello", 5000);
    cut.gateway.handleBrokerMessage(`ingest/${d.clientId}`, Buffer.from(JSON.stringify(firmwareHello())));
    const sessionId = String((await reply).session_id);
    assert.ok(sessionId.startsWith("1-"));
    const toldGoodbye = d.waitForMessage((m) => m.type === "goodbye" && m.session_id === sessionId, 5000);

    proxy.cut();
    // The survivor's goodbye: the device closes its channel and forgets the session.
    await toldGoodbye;
    await eventually(() => peer.gateway.peers.get(1)?.state === "up", 5000, "instance 1 known up again");
    await eventually(
      () => cut.gateway.sessions.byClient(d.clientId) === undefined,
      5000,
      "instance 1 to end the session its device was told goodbye for",
    );
    assert.equal(cut.metrics.closes().orphaned, 1);
  });
});
