/**
 * Plausibility of an Opus packet before it reaches a decoder (RFC 6716 section 3.1).
 * AES-CTR has no integrity tag, so a forged or corrupted datagram decrypts to random
 * bytes; checking the TOC byte and the frame-count byte rejects most of them cheaply, and
 * a mono device never sends the stereo flag.
 */

/** One Opus packet is at most 120 ms; 1275 bytes per 20 ms frame bounds it. */
export const MAX_OPUS_PACKET_BYTES = 1275 * 6;

export type OpusRejection = "empty" | "too_long" | "stereo" | "bad_frame_count" | "wrong_duration";

/**
 * `frameDurationMs`: the frame duration the device announced in its hello (20, 40 or 60
 * ms; the firmware's is 60, py-xiaozhi's 20). A device encodes every packet with exactly
 * that duration, so a packet of any other length is not from the device. This one check refuses about 19 in 20 of the random packets that
 * a forger without the session key produces and libopus would otherwise decode (measured:
 * 23% of random payloads decode, 1.2% also carry 60 ms; see docs/security.md).
 */
export function checkOpusPacket(packet: Buffer, frameDurationMs?: number): OpusRejection | undefined {
  if (packet.length === 0) return "empty";
  if (packet.length > MAX_OPUS_PACKET_BYTES) return "too_long";
  const toc = packet[0] as number;
  if ((toc & 0x04) !== 0) return "stereo";
  const code = toc & 0x03;
  if (code === 3) {
    if (packet.length < 2) return "bad_frame_count";
    const count = (packet[1] as number) & 0x3f;
    // At most 120 ms in one packet.
    if (count === 0 || count * frameDurationTenthsMs(toc) > 1200) return "bad_frame_count";
  }
  if (frameDurationMs !== undefined && packetDurationTenthsMs(packet) !== frameDurationMs * 10) {
    return "wrong_duration";
  }
  return undefined;
}

/** Audio duration of a packet that passed the frame-count check, in tenths of a millisecond. */
export function packetDurationTenthsMs(packet: Buffer): number {
  const toc = packet[0] as number;
  const code = toc & 0x03;
  const frames = code === 0 ? 1 : code < 3 ? 2 : (packet[1] as number) & 0x3f;
  return frames * frameDurationTenthsMs(toc);
}

/** Frame duration of the TOC's configuration, in tenths of a millisecond. */
export function frameDurationTenthsMs(toc: number): number {
  const config = toc >> 3;
  if (config < 12) return [100, 200, 400, 600][config % 4] as number; // SILK
  if (config < 16) return [100, 200][config % 2] as number; // hybrid
  return [25, 50, 100, 200][config % 4] as number; // CELT
}
