/**
 * The LiveKit agent of one gateway instance: the AgentFactory for its sessions, and the
 * periodic ghost-room sweep.
 */

import type { OpusPool } from "../../audio/opus-pool.ts";
import type { Logger } from "../../ops/log.ts";
import type { GatewayMetrics } from "../../ops/metrics.ts";
import type { SessionOwner } from "../../protocol/session-id.ts";
import type { AgentFactory } from "../agent-bridge.ts";
import { LiveKitBridge } from "./bridge.ts";
import type { LiveKitConfig } from "./options.ts";
import { createLiveKitServices, type LiveKitServices } from "./services.ts";
import { sweepGhostRooms } from "./sweeper.ts";
import { createRoomTransports } from "./transports.ts";

export interface LiveKitAgentDeps {
  readonly me: SessionOwner;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** The Opus workers (the media-process transport decodes agent voice there). */
  readonly pool: OpusPool;
  isLive(sessionId: string): boolean;
}

export interface LiveKitAgent {
  readonly factory: AgentFactory;
  readonly services: LiveKitServices;
  /** Sweeps once now (without delaying start-up) and then every sweepIntervalMs. */
  start(): void;
  /**
   * Stops the sweep. rtc-node's native runtime is process-wide and is not disposed here:
   * main.ts ends the process after the drain, and a test process disposes it once at its end.
   */
  stop(): Promise<void>;
  sweep(): Promise<string[]>;
}

export function createLiveKitAgent(config: LiveKitConfig, deps: LiveKitAgentDeps): LiveKitAgent {
  const { metrics, log } = deps;
  const services = createLiveKitServices(
    {
      url: config.url,
      apiKey: config.apiKey,
      apiSecret: config.apiSecret,
      dispatch: config.dispatch,
      emptyTimeoutS: config.emptyTimeoutS,
      maxParticipants: 4,
      mcpTimeoutMs: 5000,
      tokenTtlS: 6 * 3600,
    },
    {
      roomOpened: () => metrics.agentRooms.inc(),
      roomClosed: () => metrics.agentRooms.dec(),
      failed: (room, err) => {
        metrics.agentEvents.inc({ event: "room_failed" });
        log.error({ room, err: err.message }, "LiveKit room setup failed; the device is told goodbye");
      },
      drop: (reason) => metrics.agentEvents.inc({ event: reason }),
    },
  );
  const transports = createRoomTransports(config, { metrics, log, pool: deps.pool });
  let timer: NodeJS.Timeout | undefined;
  const sweep = async () => {
    const deleted = await sweepGhostRooms({
      me: deps.me,
      listRooms: async () => (await services.rooms.listRooms()).map((r) => r.name),
      deleteRoom: (name) => services.rooms.deleteRoom(name),
      isLive: deps.isLive,
    });
    if (deleted.length > 0) {
      metrics.agentEvents.inc({ event: "ghost_room_deleted" }, deleted.length);
      log.info({ deleted: deleted.length }, "ghost rooms deleted");
    }
    return deleted;
  };
  const sweepQuietly = () =>
    void sweep().catch((err: Error) => {
      metrics.agentEvents.inc({ event: "sweep_failed" });
      log.warn({ err: err.message }, "ghost-room sweep failed");
    });
  return {
    factory: (info, sink) =>
      new LiveKitBridge(info, sink, {
        services,
        transports: transports.factory,
        greeting: config.greeting,
        lateSignalMs: config.lateSignalMs,
      }),
    services,
    start() {
      sweepQuietly();
      if (config.sweepIntervalMs > 0) {
        timer = setInterval(sweepQuietly, config.sweepIntervalMs);
        timer.unref();
      }
    },
    async stop() {
      clearInterval(timer);
      await transports.close();
    },
    sweep,
  };
}
