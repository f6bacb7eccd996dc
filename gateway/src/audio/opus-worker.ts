/**
 * An Opus worker thread. Holds the codec state of every stream pinned to it: Opus is
 * stateful, so a stream's frames must always reach the same encoder or decoder.
 */
import { createRequire } from "node:module";
import { parentPort } from "node:worker_threads";
import type { OpusEncoder as OpusCodec } from "@discordjs/opus";
import {
  FrameOp,
  type FromWorker,
  SEQUENCE_HEADER_BYTES,
  type ToWorker,
  unpackSequence,
} from "./opus-protocol.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

/** libopus `OPUS_SET_COMPLEXITY_REQUEST`. */
const OPUS_SET_COMPLEXITY = 4010;

const port = parentPort;
if (!port) throw new Error("opus-worker must run as a worker thread");

interface Stream {
  readonly codec: OpusCodec;
  readonly encode: boolean;
  /** Decoders: samples of the last packet decoded, the length a concealment keeps. */
  lastSamples: number;
}

const streams = new Map<number, Stream>();
const EMPTY = Buffer.alloc(0);

port.on("message", (msg: ToWorker) => {
  switch (msg.kind) {
    case "open": {
      const codec = new OpusEncoder(msg.sampleRate, 1);
      if (msg.role === "encoder") {
        codec.applyEncoderCTL(OPUS_SET_COMPLEXITY, msg.complexity);
        codec.setBitrate(msg.bitrate);
      }
      // Agents send 20 ms packets: the concealment length until one has been decoded.
      streams.set(msg.streamId, { codec, encode: msg.role === "encoder", lastSamples: msg.sampleRate / 50 });
      return;
    }
    case "close":
      streams.delete(msg.streamId);
      return;
    case "batch": {
      const started = process.hrtime.bigint();
      const n = msg.streamIds.length;
      const outputs: Buffer[] = [];
      const errors: Record<number, string> = {};
      let total = 0;
      for (let i = 0; i < n; i++) {
        const stream = streams.get(msg.streamIds[i] as number);
        const begin = msg.offsets[i] as number;
        const frame = Buffer.from(msg.data, begin, (msg.offsets[i + 1] as number) - begin);
        let out: Buffer = EMPTY;
        if (!stream) errors[i] = "stream not open";
        else {
          try {
            // Encoders get PCM16 LE, decoders get Opus; the role was fixed at open.
            if (msg.ops[i] === FrameOp.sequence) out = decodeSequence(stream, frame);
            else out = stream.encode ? stream.codec.encode(frame) : stream.codec.decode(frame);
          } catch (err) {
            errors[i] = (err as Error).message || "codec error";
          }
        }
        outputs.push(out);
        total += out.length;
      }
      const data = new ArrayBuffer(total);
      const packed = new Uint8Array(data);
      const offsets = new Uint32Array(n + 1);
      for (let i = 0; i < n; i++) {
        const out = outputs[i] as Buffer;
        packed.set(out, offsets[i] as number);
        offsets[i + 1] = (offsets[i] as number) + out.length;
      }
      const busyNs = Number(process.hrtime.bigint() - started);
      const reply: FromWorker = { kind: "results", batchId: msg.batchId, offsets, data, errors, busyNs };
      port.postMessage(reply, [data, offsets.buffer]);
      return;
    }
  }
});

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

port.postMessage({ kind: "ready" } satisfies FromWorker);
