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
const EMPTY = Buffer.alloc(0);

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
            out = stream.encode ? stream.codec.encode(frame) : stream.codec.decode(frame);
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

port.postMessage({ kind: "ready" } satisfies FromWorker);
