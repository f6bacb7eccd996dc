/**
 * Device frames lost on the way (a gap in the session's UDP sequence: the firmware numbers
 * every packet it sends from 1): counted, and, where the gateway decodes the device's Opus,
 * concealed, so the agent hears a lost frame instead of the audio closing up around it.
 * Real gateway, broker and UDP on loopback; the agent records what reaches it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AgentFactory } from "../src/agent/agent-bridge.ts";
import type { RunningGateway } from "../src/app.ts";
import { MAX_CONCEALED_UP_FRAMES } from "../src/session/device-session.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

/** PCM16 bytes of one 60 ms frame at the simulated device's 16 kHz. */
const FRAME_BYTES = 16_000 * 0.06 * 2;

/** Per client id, what reached the agent: a value per call. */
class Received {
  readonly #byClient = new Map<string, number[]>();
  add(clientId: string, value: number): void {
    this.#byClient.set(clientId, [...(this.#byClient.get(clientId) ?? []), value]);
  }
  of(clientId: string): number[] {
    return this.#byClient.get(clientId) ?? [];
  }
}

/** A gateway of its own (one broker, one gateway: a device's hello has one taker). */
function gatewayWith(agentFactory: AgentFactory) {
  let stack: Stack | undefined;
  let gw: RunningGateway | undefined;
  before(async () => {
    stack = await startStack();
    gw = await stack.startGateway({}, agentFactory);
  });
  after(() => stack?.stop());
  return {
    get metrics() {
      return (gw as RunningGateway).metrics;
    },
    /** A device in session; `steps` sends ("send") or loses ("lose") one frame each. */
    async deviceDoing(steps: readonly ("send" | "lose")[]) {
      const device = await (stack as Stack).device();
      await device.hello();
      for (const step of steps) {
        if (step === "send") device.sendFrame();
        else device.loseFrame();
      }
      return device;
    },
  };
}

const lose = (n: number): "lose"[] => new Array<"lose">(n).fill("lose");

describe("device frames lost on the way, where the gateway decodes", () => {
  const pcm = new Received();
  const gw = gatewayWith((info) => ({
    pushAudio: (frame) => pcm.add(info.clientId, frame.length),
    onDeviceEvent: () => {},
    close: async () => {},
  }));

  it("a lost frame is concealed before the next one, one frame long, and counted", async () => {
    const missed0 = gw.metrics.framesUpMissedTotal;
    const device = await gw.deviceDoing(["send", "send", ...lose(1), "send"]);
    await eventually(() => pcm.of(device.clientId).length === 3, 5000, "three decodes at the agent");
    assert.deepEqual(pcm.of(device.clientId), [FRAME_BYTES, FRAME_BYTES, 2 * FRAME_BYTES]);
    assert.equal(gw.metrics.framesUpMissedTotal - missed0, 1);
    await device.close();
  });

  it(`at most ${MAX_CONCEALED_UP_FRAMES} lost frames are concealed; every one is counted`, async () => {
    const missed0 = gw.metrics.framesUpMissedTotal;
    const lost = MAX_CONCEALED_UP_FRAMES + 2;
    const device = await gw.deviceDoing(["send", ...lose(lost), "send"]);
    await eventually(() => pcm.of(device.clientId).length === 2, 5000, "two decodes at the agent");
    assert.deepEqual(pcm.of(device.clientId), [FRAME_BYTES, (MAX_CONCEALED_UP_FRAMES + 1) * FRAME_BYTES]);
    assert.equal(gw.metrics.framesUpMissedTotal - missed0, lost);
    await device.close();
  });

  it("frames lost before the session's first are counted, not concealed (nothing decoded yet)", async () => {
    const missed0 = gw.metrics.framesUpMissedTotal;
    const device = await gw.deviceDoing([...lose(2), "send"]);
    await eventually(() => pcm.of(device.clientId).length === 1, 5000, "one decode at the agent");
    assert.deepEqual(pcm.of(device.clientId), [FRAME_BYTES]);
    assert.equal(gw.metrics.framesUpMissedTotal - missed0, 2);
    await device.close();
  });
});

describe("device frames lost on the way, passed through undecoded (pushOpus, as the LiveKit media bridge)", () => {
  const sequences = new Received();
  const gw = gatewayWith((info) => ({
    pushAudio: () => {},
    pushOpus: (frame) => sequences.add(info.clientId, frame.sequence),
    onDeviceEvent: () => {},
    close: async () => {},
  }));

  it("the frames after a loss carry their sequence, and the loss is counted", async () => {
    const missed0 = gw.metrics.framesUpMissedTotal;
    const device = await gw.deviceDoing(["send", ...lose(2), "send", "send"]);
    await eventually(() => sequences.of(device.clientId).length === 3, 5000, "three frames at the bridge");
    assert.deepEqual(sequences.of(device.clientId), [1, 4, 5]);
    assert.equal(gw.metrics.framesUpMissedTotal - missed0, 2);
    await device.close();
  });
});
