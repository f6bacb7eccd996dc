/**
 * The one audio format the gateway sends devices: Opus, 24 kHz mono, 60 ms frames. Both
 * reference gateways announce exactly this in the hello reply, and firmware decodes at
 * what the reply says (docs/device-protocol.md, "Audio formats"). Every agent's voice is
 * read or decoded straight to this rate, then cut into frames of this length.
 */
export const DOWN_RATE = 24000;
export const DOWN_FRAME_MS = 60;
/** 1440 samples per 60 ms frame. */
export const DOWN_FRAME_SAMPLES = (DOWN_RATE * DOWN_FRAME_MS) / 1000;
/** PCM16 mono: 2880 bytes per frame. */
export const DOWN_FRAME_BYTES = DOWN_FRAME_SAMPLES * 2;
