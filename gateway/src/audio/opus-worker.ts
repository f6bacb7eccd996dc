/**
 * An Opus worker thread. Holds the codec state of every stream pinned to it: Opus is
 * stateful, so a stream's frames must always reach the same encoder or decoder.
 */
import { createRequire } from "node:module";
import { parentPort } from "node:worker_threads";
import type { OpusEncoder as OpusCodec } from "@discordjs/opus";
import type { FromWorker, ToWorker } from "./opus-protocol.ts";

const require = createRequire(import.meta.url);
const { OpusEncoder } = require("@discordjs/opus") as typeof import("@discordjs/opus");

/** libopus `OPUS_SET_COMPLEXITY_REQUEST`. */
const OPUS_SET_COMPLEXITY = 4010;

const port = parentPort;
if (!port) throw new Error("opus-worker must run as a worker thread");

interface Stream {
  readonly codec: OpusCodec;
  readonly encode: boolean;
}

const streams = new Map<number, Stream>();

port.on("message", (msg: ToWorker) => {
  switch (msg.kind) {
    case "open": {
      const codec = new OpusEncoder(msg.sampleRate, 1);
      if (msg.role === "encoder") {
        codec.applyEncoderCTL(OPUS_SET_COMPLEXITY, msg.complexity);
        codec.setBitrate(msg.bitrate);
      }
      streams.set(msg.streamId, { codec, encode: msg.role === "encoder" });
      return;
    }
    case "close":
      streams.delete(msg.streamId);
      return;
    case "batch": {
      const start = process.hrtime.bigint();
      const outputs: (Uint8Array | string)[] = [];
      const transfer: ArrayBuffer[] = [];
      for (let i = 0; i < msg.frames.length; i++) {
        const stream = streams.get(msg.streamIds[i] as number);
        const input = msg.frames[i] as Uint8Array;
        const frame = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
        if (!stream) {
          outputs.push("stream not open");
          continue;
        }
        try {
          // Encoders get PCM16 LE, decoders get Opus; the role was fixed at open.
          const out = stream.encode ? stream.codec.encode(frame) : stream.codec.decode(frame);
          const copy = new Uint8Array(out.length);
          copy.set(out);
          outputs.push(copy);
          transfer.push(copy.buffer);
        } catch (err) {
          outputs.push((err as Error).message || "codec error");
        }
      }
      const busyNs = Number(process.hrtime.bigint() - start);
      const reply: FromWorker = { kind: "results", batchId: msg.batchId, outputs, busyNs };
      port.postMessage(reply, transfer);
      return;
    }
  }
});

port.postMessage({ kind: "ready" } satisfies FromWorker);
