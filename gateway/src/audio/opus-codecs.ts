/**
 * The codec state of a set of Opus streams and the work done on one frame of them. An Opus
 * worker holds one table; so does the pool's main thread for the streams it keeps inline
 * (opus-pool.ts). Opus is stateful: a stream's frames must always reach the same table.
 */
import { createRequire } from "node:module";
import type { OpusEncoder as OpusCodec } from "@discordjs/opus";
import { FrameOp, type OpenStream, SEQUENCE_HEADER_BYTES, unpackSequence } from "./opus-protocol.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

/** libopus `OPUS_SET_COMPLEXITY_REQUEST`. */
const OPUS_SET_COMPLEXITY = 4010;
const EMPTY = Buffer.alloc(0);

interface Stream {
  readonly codec: OpusCodec;
  readonly encode: boolean;
  /** Decoders: samples of the last packet decoded, the length a concealment keeps. */
  lastSamples: number;
}

export class CodecTable {
  readonly #streams = new Map<number, Stream>();

  open(msg: OpenStream): void {
    const codec = new OpusEncoder(msg.sampleRate, 1);
    if (msg.role === "encoder") {
      codec.applyEncoderCTL(OPUS_SET_COMPLEXITY, msg.complexity);
      codec.setBitrate(msg.bitrate);
    }
    // The concealment length until a packet has been decoded (agents send 20 ms packets;
    // a device's first packet is decoded before any concealment of its stream).
    this.#streams.set(msg.streamId, {
      codec,
      encode: msg.role === "encoder",
      lastSamples: msg.sampleRate / 50,
    });
  }

  close(streamId: number): void {
    this.#streams.delete(streamId);
  }

  /** One frame's output; throws with the codec's message when it fails. */
  run(streamId: number, op: number, frame: Buffer): Buffer {
    const stream = this.#streams.get(streamId);
    if (!stream) throw new Error("stream not open");
    // Encoders get PCM16 LE, decoders get Opus; the role was fixed at open.
    if (op === FrameOp.sequence) return decodeSequence(stream, frame);
    if (stream.encode) return stream.codec.encode(frame);
    const pcm = stream.codec.decode(frame);
    stream.lastSamples = pcm.length >> 1;
    return pcm;
  }
}

/**
 * Decodes a sequence frame's packets in order into one buffer, behind a u16 LE count of
 * packets that failed to decode. An empty packet, and one that fails, is concealed:
 * libopus conceals on an empty packet, and @discordjs/opus always asks it for its maximum
 * (5760 samples), so only one packet's worth (the last decoded packet's length) is kept.
 */
function decodeSequence(stream: Stream, frame: Buffer): Buffer {
  if (stream.encode) throw new Error("a sequence is for decoders");
  const packets = unpackSequence(frame);
  if (!packets) throw new Error("malformed sequence frame");
  const pcm: Buffer[] = [];
  let undecodable = 0;
  let total = SEQUENCE_HEADER_BYTES;
  for (const packet of packets) {
    let out: Buffer | undefined;
    if (packet.length > 0) {
      try {
        out = stream.codec.decode(packet);
        stream.lastSamples = out.length >> 1;
      } catch {
        undecodable++;
      }
    }
    out ??= stream.codec.decode(EMPTY).subarray(0, stream.lastSamples * 2);
    pcm.push(out);
    total += out.length;
  }
  const result = Buffer.allocUnsafe(total);
  result.writeUInt16LE(undecodable, 0);
  let at = SEQUENCE_HEADER_BYTES;
  for (const p of pcm) at += p.copy(result, at);
  return result;
}
