/**
 * Which room transport a gateway instance uses for its sessions' LiveKit rooms
 * (LIVEKIT_MEDIA): `process` (default), one Go media process per instance that forwards
 * the device's Opus unchanged (media/, docs/media-process.md), or `rtc-node`, in-process.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { OpusPool } from "../../audio/opus-pool.ts";
import type { Logger } from "../../ops/log.ts";
import type { GatewayMetrics } from "../../ops/metrics.ts";
import { MediaProcess } from "./media/media-process.ts";
import { processTransportFactory } from "./media/process-transport.ts";
import type { LiveKitConfig } from "./options.ts";
import type { RoomTransportFactory } from "./room-transport.ts";
import { rtcNodeTransportFactory } from "./rtc-node-transport.ts";

export interface RoomTransportDeps {
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** The instance's Opus workers: the process transport decodes the agent's voice there. */
  readonly pool: OpusPool;
}

export interface RoomTransports {
  readonly kind: string;
  readonly factory: RoomTransportFactory;
  /** The media process, when this instance uses one (health, tests). */
  readonly media?: MediaProcess;
  /** Releases what the transports share (a media process); the rooms are left by then. */
  close(): Promise<void>;
}

/** How often the media process is pinged (media-liveness.ts). */
export const MEDIA_PING_INTERVAL_MS = 1000;
/**
 * A media process silent to pings this long is killed as hung: a hang is noticed 3-4 s
 * after it began (up to one interval to the next ping, then this; measured in
 * livekit-media-process.test.ts), where a crash is noticed at once. Far above what a
 * healthy child takes to answer, which bench:rooms reports (`media ping p99`).
 */
export const MEDIA_HANG_TIMEOUT_MS = 3000;

/**
 * Where the media binary is: beside the bundle (dist/bin/voice-media, from
 * dist/gateway/livekit.js) or, running from source, where scripts/build-media.sh puts it.
 */
export function mediaBinaryPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) return path.resolve(path.dirname(here), "../../../../.cache/bin/voice-media");
  return path.resolve(path.dirname(here), "../bin/voice-media");
}

export function createRoomTransports(config: LiveKitConfig, deps: RoomTransportDeps): RoomTransports {
  const drop = (reason: string) => deps.metrics.agentEvents.inc({ event: reason });
  if (config.media === "rtc-node") {
    return { kind: "rtc-node", factory: rtcNodeTransportFactory({ drop }), async close() {} };
  }
  const media = new MediaProcess({
    binary: mediaBinaryPath(),
    threads: config.mediaThreads,
    maxBacklogBytes: 1 << 20,
    restartDelayMs: 250,
    maxRestartDelayMs: 5000,
    readyTimeoutMs: 5000,
    pingIntervalMs: MEDIA_PING_INTERVAL_MS,
    hangTimeoutMs: MEDIA_HANG_TIMEOUT_MS,
    events: {
      drop,
      childCounts: (counts) => {
        for (const [reason, n] of Object.entries(counts))
          deps.metrics.agentEvents.inc({ event: `media_${reason}` }, n);
      },
      started: (pid) => deps.log.info({ pid }, "media process started"),
      exited: (code, signal, stderr) => {
        deps.metrics.agentEvents.inc({ event: "media_process_exited" });
        deps.log.warn({ code, signal, stderr: stderr.slice(-2000) }, "media process exited");
      },
      answered: (ms) => deps.metrics.mediaPing.observe(ms / 1000),
      hung: (silentMs) =>
        deps.log.error({ silentMs }, "media process answered no ping: killed as hung, its sessions end"),
    },
  });
  // Started now so that the first session does not wait for it; a failure here shows up
  // as failed joins (and the process is retried on the restart policy).
  media.start().catch((err: Error) => deps.log.error({ err: err.message }, "media process failed to start"));
  return {
    kind: "process",
    factory: processTransportFactory({
      media,
      pool: deps.pool,
      drop,
      decoded: (s) => deps.metrics.agentDecodeLatency.observe(s),
    }),
    media,
    close: () => media.close(),
  };
}
