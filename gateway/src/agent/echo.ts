/**
 * The echo agent: the device hears itself back. The default when no LiveKit credentials
 * are configured, and the agent of every local test and load run.
 *
 * - `realtime` listening (full duplex: the firmware keeps streaming while it plays):
 *   each frame goes straight back, so a round trip is measurable per frame.
 * - `auto` and `manual` (half duplex): the agent collects an utterance, and when the
 *   speaker pauses (0.6 s under the voice threshold) or `listen stop` arrives, plays it
 *   back at real-time pace. The firmware then returns to listening, as with a real agent.
 */

import { resamplePcm16 } from "../audio/resample.ts";
import { DOWN_RATE as OUT_RATE } from "../protocol/audio-format.ts";
import type { ListenMode } from "../protocol/messages.ts";
import type { AgentBridge, AgentFactory, AgentSink, DeviceEvent } from "./agent-bridge.ts";

/** RMS above which a frame counts as voice (PCM16 scale). */
const VOICE_RMS = 300;
/**
 * Times in milliseconds, never in frames: a device may announce 20, 40 or 60 ms frames in
 * its hello (py-xiaozhi sends 20), and counting frames played a 20 ms device back at a
 * third of real time.
 */
const END_OF_UTTERANCE_MS = 600;
/** Of the pause that ended an utterance, this much stays at its end when played back. */
const KEPT_PAUSE_MS = 120;
/** An utterance longer than this is played back in full up to this length. */
const MAX_UTTERANCE_MS = 10_000;
/** Realtime mode: close the turn after this long without device audio. */
const REALTIME_IDLE_MS = 300;

export const createEchoAgent: AgentFactory = (_info, sink) => new EchoAgent(sink);

class EchoAgent implements AgentBridge {
  readonly #sink: AgentSink;
  #mode: ListenMode = "auto";
  #utterance: Buffer[] = [];
  #utteranceMs = 0;
  #silentMs = 0;
  #playback: NodeJS.Timeout | undefined;
  #realtimeIdle: NodeJS.Timeout | undefined;
  #speaking = false;
  #closed = false;

  constructor(sink: AgentSink) {
    this.#sink = sink;
  }

  pushAudio(pcm: Buffer, sampleRate: number): void {
    if (this.#closed) return;
    const out = resamplePcm16(pcm, sampleRate, OUT_RATE);
    if (this.#mode === "realtime") {
      this.#startSpeaking();
      this.#sink.audio(out);
      if (this.#realtimeIdle) this.#realtimeIdle.refresh();
      else this.#realtimeIdle = setTimeout(() => this.#endRealtimeTurn(), REALTIME_IDLE_MS);
      return;
    }
    if (this.#playback) return; // half duplex: the device should not talk while we play
    const voiced = rmsOf(pcm) >= VOICE_RMS;
    if (this.#utterance.length === 0 && !voiced) return;
    const ms = durationMs(out);
    this.#utterance.push(out);
    this.#utteranceMs += ms;
    this.#silentMs = voiced ? 0 : this.#silentMs + ms;
    if (this.#silentMs >= END_OF_UTTERANCE_MS || this.#utteranceMs >= MAX_UTTERANCE_MS) {
      this.#playUtterance();
    }
  }

  onDeviceEvent(event: DeviceEvent): void {
    if (this.#closed) return;
    switch (event.kind) {
      case "listen_start":
        this.#mode = event.mode;
        return;
      case "listen_stop":
        if (this.#mode === "realtime") this.#endRealtimeTurn();
        else if (this.#utterance.length > 0) this.#playUtterance();
        return;
      case "abort":
        this.#stopPlayback();
        this.#resetUtterance();
        return;
      default:
        return;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopPlayback();
    clearTimeout(this.#realtimeIdle);
    this.#realtimeIdle = undefined;
    this.#resetUtterance();
  }

  #resetUtterance(): void {
    this.#utterance = [];
    this.#utteranceMs = 0;
    this.#silentMs = 0;
  }

  #startSpeaking(): void {
    if (this.#speaking) return;
    this.#speaking = true;
    this.#sink.speechStart();
  }

  #endRealtimeTurn(): void {
    clearTimeout(this.#realtimeIdle);
    this.#realtimeIdle = undefined;
    if (!this.#speaking) return;
    this.#speaking = false;
    this.#sink.speechEnd();
  }

  #playUtterance(): void {
    // Trim the trailing pause: it is what ended the utterance, not part of it.
    const frames = [...this.#utterance];
    let trim = Math.max(0, this.#silentMs - KEPT_PAUSE_MS);
    while (frames.length > 0 && durationMs(frames.at(-1) as Buffer) <= trim) {
      trim -= durationMs(frames.pop() as Buffer);
    }
    this.#resetUtterance();
    if (frames.length === 0) return;
    this.#startSpeaking();
    // Real-time pace whatever the frame size: each chunk is due when the audio before it
    // has played (scheduled from the start, so timer lateness does not accumulate).
    const started = performance.now();
    let i = 0;
    let dueMs = 0;
    const tick = () => {
      if (this.#closed) return;
      if (i >= frames.length) return this.#stopPlayback();
      const chunk = frames[i++] as Buffer;
      this.#sink.audio(chunk);
      dueMs += durationMs(chunk);
      this.#playback = setTimeout(tick, Math.max(0, started + dueMs - performance.now()));
    };
    this.#playback = setTimeout(tick, 0);
  }

  #stopPlayback(): void {
    if (this.#playback) clearTimeout(this.#playback);
    this.#playback = undefined;
    if (this.#speaking) {
      this.#speaking = false;
      this.#sink.speechEnd();
    }
  }
}

/** Duration of PCM16 mono at OUT_RATE, ms. */
function durationMs(pcm: Buffer): number {
  return (pcm.length / 2 / OUT_RATE) * 1000;
}

function rmsOf(pcm: Buffer): number {
  const n = pcm.length >> 1;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const s = pcm.readInt16LE(i * 2);
    sum += s * s;
  }
  return n === 0 ? 0 : Math.sqrt(sum / n);
}
