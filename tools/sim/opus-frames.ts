/**
 * Real Opus frames for simulated devices, encoded once and shared: 16 kHz mono 60 ms, as
 * the firmware sends. Encoding them up front keeps the load generator from being the
 * bottleneck it is measuring.
 */
import { createRequire } from "node:module";
import { SpeechSignal } from "./speech-signal.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

export const UP_RATE = 16000;
export const FRAME_MS = 60;

export interface UpstreamClip {
  /** Speech-like frames (voiced words with short pauses). */
  readonly speech: readonly Buffer[];
  /** Frames of silence, as the firmware sends while the room is quiet. */
  readonly silence: Buffer;
}

const cache = new Map<string, UpstreamClip>();

/**
 * `seconds` of speech-like Opus (cached per seed), in frames of `frameMs` (60 as the
 * firmware; 20 or 40 as other clients announce in their hello).
 */
export function upstreamClip(seed = 1, seconds = 6, frameMs = FRAME_MS): UpstreamClip {
  const key = `${seed}/${seconds}/${frameMs}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const encoder = new OpusEncoder(UP_RATE, 1);
  // The firmware's encoder settings are not ours to choose; libopus defaults are close.
  const signal = new SpeechSignal({ sampleRate: UP_RATE, seed });
  const speech: Buffer[] = [];
  const samples = (UP_RATE * frameMs) / 1000;
  for (let i = 0; i < Math.ceil((seconds * 1000) / frameMs); i++)
    speech.push(encoder.encode(signal.next(samples)));
  // From a fresh encoder: a packet encoded right after the speech carries that encoder's
  // state, and sent over and over it decodes to a steady tone, not silence (measured at
  // 20 ms: RMS 466, above the echo's voice threshold).
  const silence = new OpusEncoder(UP_RATE, 1).encode(Buffer.alloc(samples * 2));
  const clip = { speech, silence };
  cache.set(key, clip);
  return clip;
}
