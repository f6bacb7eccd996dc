/**
 * An input whose handling throws (a defect in the gateway, found or not yet found) costs
 * that input, counted, and not the process: before, the exception escaped the broker
 * client's or the UDP socket's handler and ended the instance with every session on it.
 * The defects are stood in for by an agent that throws where a real one could.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { AgentBridge, AgentFactory } from "../src/agent/agent-bridge.ts";
import { createEchoAgent } from "../src/agent/echo.ts";
import type { RunningGateway } from "../src/app.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

describe("an input whose handling throws is dropped, counted, and the process carries on", () => {
  let stack: Stack;
  let gw: RunningGateway;
  /** The device (MAC) whose session cannot be opened: its agent throws when made. */
  let openFails = "";
  /** The device (MAC) whose every datagram throws in its agent. */
  let opusFails = "";

  const agents: AgentFactory = (info, sink) => {
    const mac = info.mac.toLowerCase();
    if (mac === openFails) throw new Error("the agent could not be made (test)");
    const echo = createEchoAgent(info, sink);
    if (mac !== opusFails) return echo;
    const failing: AgentBridge = {
      pushAudio: (pcm, rate) => echo.pushAudio(pcm, rate),
      pushOpus: () => {
        throw new Error("the agent threw on a packet (test)");
      },
      onDeviceEvent: (event) => echo.onDeviceEvent(event),
      close: () => echo.close(),
    };
    return failing;
  };

  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway({}, agents);
  });

  after(async () => {
    await stack.stop();
  });

  /** A device served end to end by the same process: hello, then its voice echoed back. */
  async function served(): Promise<void> {
    const device = await stack.device();
    await device.hello();
    device.listen("realtime");
    device.talk(120);
    await device.waitForAudio(2);
    assert.deepEqual(device.stats.errors, {});
  }

  it("a hello whose session throws as it opens is counted mqtt_handler_failed; the next device is served", async () => {
    const device = await stack.device();
    openFails = device.mac.toLowerCase();
    const streams = gw.pool.openStreams;
    // The firmware's hello, sent without waiting for the reply that cannot come.
    device.send(firmwareHello(60));
    await eventually(() => gw.metrics.dropCount("mqtt_handler_failed") === 1, 5000, "mqtt_handler_failed");
    assert.equal(gw.pool.openStreams, streams, "the codec streams opened for it went back");
    await served();
    assert.equal(gw.gateway.sessions.byClient(device.clientId), undefined, "no session half opened");
  });

  it("a datagram that throws in its session is counted udp_handler_failed; the session lives and other devices are served", async () => {
    const device = await stack.device();
    opusFails = device.mac.toLowerCase();
    await device.hello();
    device.listen("realtime");
    device.talk(120);
    await eventually(() => gw.metrics.dropCount("udp_handler_failed") >= 2, 5000, "udp_handler_failed");
    assert.ok(gw.gateway.sessions.byClient(device.clientId), "the session lives");
    await served();
  });
});
