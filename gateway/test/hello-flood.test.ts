/**
 * A hello flood from one authenticated device, against the real broker and a real gateway:
 * the flooder gets its hello budget and nothing more (no session, key, connection id or
 * agent per extra hello, every one counted), and other devices keep talking. Their round
 * trip is measured and printed, not asserted against a tight figure.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { AgentFactory } from "../src/agent/agent-bridge.ts";
import { createEchoAgent } from "../src/agent/echo.ts";
import type { RunningGateway } from "../src/app.ts";
import { DEFAULT_HELLO_BUDGET } from "../src/session/hello-budget.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

const FLOOD = 5000;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor(s.length / 2)] as number);
}

describe("hello flood", () => {
  let stack: Stack;
  let gw: RunningGateway;
  const agentsMade = new Map<string, number>();
  const counting: AgentFactory = (info, sink) => {
    agentsMade.set(info.clientId, (agentsMade.get(info.clientId) ?? 0) + 1);
    return createEchoAgent(info, sink);
  };

  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway({}, counting);
  });

  after(() => stack.stop());

  /** One realtime turn per device; the round trips of this turn. */
  async function turn(devices: readonly SimulatedDevice[]): Promise<number[]> {
    const before = devices.map((d) => d.stats.roundTripMs.length);
    await Promise.all(
      devices.map(async (d) => {
        d.talk(600);
        await d.waitForAudio(8, 15_000);
      }),
    );
    return devices.flatMap((d, i) => d.stats.roundTripMs.slice(before[i]));
  }

  it(`${FLOOD} hellos from one device: at most the budget opens sessions, the rest are counted, others are served`, async () => {
    const others = await Promise.all([1, 2, 3].map(() => stack.device()));
    for (const d of others) {
      await d.hello();
      d.listen("realtime");
    }
    const baseline = await turn(others);

    const flooder = await stack.device();
    const replies = () => flooder.messages.filter((m) => m.type === "hello").length;
    const opened0 = gw.metrics.dropCount("mqtt_hello_over_budget");
    const hello = JSON.stringify(firmwareHello());
    const flooding = (async () => {
      for (let i = 0; i < FLOOD; i += 250) {
        for (let j = 0; j < 250; j++) flooder.publishRaw(hello);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const during = await turn(others);
    await flooding;
    const overBudget = () => gw.metrics.dropCount("mqtt_hello_over_budget") - opened0;
    await eventually(
      () => overBudget() + (agentsMade.get(flooder.clientId) ?? 0) === FLOOD,
      20_000,
      "every hello counted",
    );

    const sessions = agentsMade.get(flooder.clientId) ?? 0;
    console.log(
      `hello flood: ${FLOOD} hellos -> ${sessions} sessions, ${overBudget()} refused over budget, ${replies()} replies; ` +
        `others' round trip median ${median(baseline).toFixed(1)} ms before, ${median(during).toFixed(1)} ms during ` +
        `(${during.length} frames)`,
    );
    // The burst, plus what refilled while the flood lasted (a few seconds).
    assert.ok(sessions <= DEFAULT_HELLO_BUDGET.burst + 3, `${sessions} sessions opened`);
    await eventually(() => replies() === sessions, 5000, "one reply per session");
    assert.equal(gw.gateway.sessions.size, others.length + 1);
    for (const d of others) {
      assert.deepEqual(d.stats.errors, {});
      assert.equal(agentsMade.get(d.clientId), 1);
    }
    // And the others still talk after it.
    assert.ok((await turn(others)).length > 0);
  });
});
