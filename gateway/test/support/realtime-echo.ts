/**
 * The echo agent's real-time check, for a device that has said hello and listens: it talks
 * one utterance, and its echo must come back at the pace it is played, whatever frame
 * duration the device announced (downstream is always 60 ms frames: counting them as the
 * device's own frames once played a 20 ms device back at a third of real time).
 */
import assert from "node:assert/strict";
import type { SimulatedDevice } from "../../../tools/sim/device.ts";

export interface EchoPace {
  /** Echoed audio received, ms (60 ms frames). */
  readonly audioMs: number;
  /** From the first echoed frame to tts stop, ms. */
  readonly spanMs: number;
}

export async function talkAndTimeEcho(device: SimulatedDevice, utteranceMs = 1500): Promise<EchoPace> {
  const first = device.waitForAudio(1, 10_000).then(() => performance.now());
  device.talk(utteranceMs);
  const startedAt = await first;
  await device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
  return { audioMs: device.stats.framesReceived * 60, spanMs: performance.now() - startedAt };
}

/** At least 60 % of the utterance came back, played within 1.3x its length, no device error. */
export function assertRealTimeEcho(device: SimulatedDevice, pace: EchoPace, utteranceMs = 1500): void {
  assert.ok(pace.audioMs >= utteranceMs * 0.6, `heard ${pace.audioMs} ms of a ${utteranceMs} ms utterance`);
  assert.ok(
    pace.spanMs < pace.audioMs * 1.3,
    `${pace.audioMs} ms of audio took ${pace.spanMs.toFixed(0)} ms`,
  );
  assert.deepEqual(device.stats.errors, {});
}
