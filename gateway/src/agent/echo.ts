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
import type { ListenMode } from "../protocol/messages.ts";
import type { AgentBridge, AgentFactory, AgentSink, DeviceEvent } from "./agent-bridge.ts";

const OUT_RATE = 24000;
const FRAME_MS = 60;
/** RMS above which a frame counts as voice (PCM16 scale). */
const VOICE_RMS = 300;
const END_OF_UTTERANCE_FRAMES = 10;
/** An utterance longer than this is played back in full up to this length. */
const MAX_UTTERANCE_FRAMES = 167; // ~10 s
/** Realtime mode: close the turn after this long without device audio. */
const REALTIME_IDLE_MS = 300;

export const createEchoAgent: AgentFactory = (_info, sink) => new EchoAgent(sink);

class EchoAgent implements AgentBridge {
  readonly #sink: AgentSink;
  #mode: ListenMode = "auto";
  #utterance: Buffer[] = [];
  #silentFrames = 0;
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
    this.#utterance.push(out);
    this.#silentFrames = voiced ? 0 : this.#silentFrames + 1;
    if (this.#silentFrames >= END_OF_UTTERANCE_FRAMES || this.#utterance.length >= MAX_UTTERANCE_FRAMES) {
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
        this.#utterance = [];
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
    this.#utterance = [];
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
    const frames = this.#utterance.slice(
      0,
      this.#utterance.length - Math.min(this.#silentFrames, END_OF_UTTERANCE_FRAMES - 2),
    );
    this.#utterance = [];
    this.#silentFrames = 0;
    if (frames.length === 0) return;
    this.#startSpeaking();
    let i = 0;
    const tick = () => {
      if (i < frames.length) {
        this.#sink.audio(frames[i++] as Buffer);
        return;
      }
      this.#stopPlayback();
    };
    tick();
    this.#playback = setInterval(tick, FRAME_MS);
  }

  #stopPlayback(): void {
    if (this.#playback) clearInterval(this.#playback);
    this.#playback = undefined;
    if (this.#speaking) {
      this.#speaking = false;
      this.#sink.speechEnd();
    }
  }
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
