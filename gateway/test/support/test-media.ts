/**
 * The real media process (built by scripts/build-media.sh) and an Opus pool, as the LiveKit
 * tests of the `process` room transport run them, with every drop they report counted by
 * reason in `drops`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MediaProcess } from "../../src/agent/livekit/media/media-process.ts";
import {
  MEDIA_HANG_TIMEOUT_MS,
  MEDIA_PING_INTERVAL_MS,
  mediaBinaryPath,
} from "../../src/agent/livekit/transports.ts";
import { OpusPool } from "../../src/audio/opus-pool.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export interface TestMedia {
  readonly media: MediaProcess;
  readonly pool: OpusPool;
  /** Every drop reported (the media process's own and the transports' given `drop`), by reason. */
  readonly drops: Map<string, number>;
  drop(reason: string): void;
  close(): Promise<void>;
}

/** Builds the media binary if needed, starts it and a one-worker pool. */
export async function startTestMedia(): Promise<TestMedia> {
  const built = spawnSync("bash", [path.join(root, "scripts/build-media.sh")], { encoding: "utf8" });
  assert.equal(built.status, 0, built.stderr);
  const drops = new Map<string, number>();
  const drop = (r: string) => drops.set(r, (drops.get(r) ?? 0) + 1);
  const pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  const media = new MediaProcess({
    binary: mediaBinaryPath(),
    threads: 1,
    maxBacklogBytes: 1 << 20,
    restartDelayMs: 100,
    maxRestartDelayMs: 1000,
    readyTimeoutMs: 5000,
    // The gateway's own: the frozen-process test measures what they give.
    pingIntervalMs: MEDIA_PING_INTERVAL_MS,
    hangTimeoutMs: MEDIA_HANG_TIMEOUT_MS,
    events: {
      drop,
      // The media process's own counts, named as the gateway counts them (transports.ts).
      childCounts: (counts) => {
        for (const [reason, n] of Object.entries(counts))
          drops.set(`media_${reason}`, (drops.get(`media_${reason}`) ?? 0) + n);
      },
      exited: () => {},
      started: () => {},
      answered: () => {},
      hung: () => {},
    },
  });
  await media.start();
  return {
    media,
    pool,
    drops,
    drop,
    close: async () => {
      await media.close();
      await pool.shutdown();
    },
  };
}
