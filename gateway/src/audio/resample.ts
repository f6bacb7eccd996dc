/**
 * Linear-interpolation resampling of PCM16 mono. Enough for the echo agent (16 kHz device
 * voice back out at 24 kHz); LiveKit does its own high-quality resampling.
 */
export function resamplePcm16(pcm: Buffer, fromRate: number, toRate: number): Buffer {
  if (fromRate === toRate) return pcm;
  const inSamples = pcm.length >> 1;
  const outSamples = Math.round((inSamples * toRate) / fromRate);
  const out = Buffer.alloc(outSamples * 2);
  const step = fromRate / toRate;
  for (let i = 0; i < outSamples; i++) {
    const pos = i * step;
    const i0 = Math.floor(pos);
    const i1 = Math.min(i0 + 1, inSamples - 1);
    const frac = pos - i0;
    const s0 = pcm.readInt16LE(Math.min(i0, inSamples - 1) * 2);
    const s1 = pcm.readInt16LE(i1 * 2);
    out.writeInt16LE(Math.round(s0 + (s1 - s0) * frac), i * 2);
  }
  return out;
}
