/**
 * A simulated device's microphone: one upstream frame per frame duration, in real time,
 * as firmware sends them. Speech from the device's clip for as long as it was told to
 * talk, then, while it listens in auto or manual mode, silence (a listening device keeps
 * streaming); in realtime mode it stops after the speech. Half duplex outside realtime
 * mode: nothing while the device plays.
 */
import type { UpstreamClip } from "./opus-frames.ts";

/** The listening modes of `listen start` (docs/device-protocol.md). */
export type ListenMode = "auto" | "manual" | "realtime";

/** What the microphone asks of its device at each tick. */
export interface MicrophoneHost {
  /** Whether the device has an audio channel; without one the microphone stops. */
  readonly channelOpen: () => boolean;
  readonly mode: () => ListenMode;
  /** Whether the device is playing (`tts start` in force). */
  readonly speaking: () => boolean;
  /** Sends one frame on the audio channel. */
  readonly send: (frame: Buffer) => void;
}

export class Microphone {
  readonly #clip: UpstreamClip;
  readonly #frameMs: number;
  readonly #host: MicrophoneHost;
  /** The next speech frame, counted over the whole clip (it loops). */
  #clipPos = 0;
  #ticker: NodeJS.Timeout | undefined;
  #speechFramesLeft = 0;

  constructor(clip: UpstreamClip, frameMs: number, host: MicrophoneHost) {
    this.#clip = clip;
    this.#frameMs = frameMs;
    this.#host = host;
  }

  /** Speech for `ms` from the next tick on; starts the ticker unless it runs. */
  talk(ms: number): void {
    this.#speechFramesLeft = Math.ceil(ms / this.#frameMs);
    if (this.#ticker) return;
    this.#ticker = setInterval(() => this.#tick(), this.#frameMs);
  }

  stop(): void {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /** The clip's next speech frame. */
  nextSpeech(): Buffer {
    const frame = this.#clip.speech[this.#clipPos % this.#clip.speech.length] as Buffer;
    this.#clipPos++;
    return frame;
  }

  #tick(): void {
    // No channel (never opened, closed, or told goodbye): the microphone stops, even if a
    // caller's own timer asks the device to talk again after close().
    if (!this.#host.channelOpen()) return this.stop();
    const mode = this.#host.mode();
    // Half duplex: while the device plays (Speaking), auto/manual send nothing.
    if (this.#host.speaking() && mode !== "realtime") return;
    if (this.#speechFramesLeft > 0) {
      this.#speechFramesLeft--;
      this.#host.send(this.nextSpeech());
    } else if (mode === "realtime") {
      this.stop();
    } else {
      this.#host.send(this.#clip.silence);
    }
  }
}
