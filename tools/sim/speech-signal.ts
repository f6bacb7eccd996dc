/**
 * A deterministic speech-like test signal: a voiced source (harmonics of a gliding pitch,
 * 90..220 Hz) shaped by a syllable envelope (~4 per second) with pauses between words.
 * Real Opus in SILK/hybrid mode treats it like voice, which a pure tone would not exercise.
 */

export interface SpeechSignalOptions {
  readonly sampleRate: number;
  /** Seed for the pitch and word pattern; different devices get different voices. */
  readonly seed: number;
  /** Peak amplitude, 0..32767. Default 9000. */
  readonly amplitude?: number;
}

export class SpeechSignal {
  readonly #rate: number;
  readonly #amp: number;
  readonly #basePitch: number;
  #n = 0;
  #phase = 0;

  constructor(options: SpeechSignalOptions) {
    this.#rate = options.sampleRate;
    this.#amp = options.amplitude ?? 9000;
    this.#basePitch = 90 + (mix(options.seed) % 130);
  }

  /** The next `samples` samples as PCM16 LE. */
  next(samples: number): Buffer {
    const out = Buffer.alloc(samples * 2);
    for (let i = 0; i < samples; i++) {
      const t = this.#n / this.#rate;
      const pitch = this.#basePitch * (1 + 0.15 * Math.sin(2 * Math.PI * 0.7 * t));
      this.#phase += (2 * Math.PI * pitch) / this.#rate;
      if (this.#phase > 2 * Math.PI * 1000) this.#phase -= 2 * Math.PI * 1000;
      let v = 0;
      for (let h = 1; h <= 12; h++) {
        const f = pitch * h;
        if (f > this.#rate / 2 - 200) break;
        // Formant-ish spectral tilt: strong low harmonics, a bump near 700 Hz.
        const gain = 1 / h + 0.6 * Math.exp(-(((f - 700) / 250) ** 2));
        v += gain * Math.sin(h * this.#phase);
      }
      const env = syllableEnvelope(t);
      const sample = Math.round((this.#amp * env * v) / 2.2);
      out.writeInt16LE(Math.max(-32768, Math.min(32767, sample)), i * 2);
      this.#n++;
    }
    return out;
  }
}

/** Words of ~4 syllables, then a pause: 1.2 s of voice, 0.4 s of near-silence. */
function syllableEnvelope(t: number): number {
  const inWord = t % 1.6;
  if (inWord > 1.2) return 0;
  const s = Math.sin(Math.PI * ((inWord * 4) % 1));
  return s * s;
}

function mix(seed: number): number {
  let x = (seed ^ 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Root-mean-square level of PCM16 LE, 0..32767. */
export function rms(pcm: Buffer): number {
  const n = pcm.length >> 1;
  if (n === 0) return 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const s = pcm.readInt16LE(i * 2);
    sum += s * s;
  }
  return Math.sqrt(sum / n);
}
