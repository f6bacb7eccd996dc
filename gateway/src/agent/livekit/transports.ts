/**
 * Which room transport a gateway instance uses for its sessions' LiveKit rooms. Today the
 * only one is `rtc-node` (in-process); the media-process transport is added here beside it.
 */
import type { LiveKitConfig } from "../../config.ts";
import type { Logger } from "../../ops/log.ts";
import type { GatewayMetrics } from "../../ops/metrics.ts";
import type { RoomTransportFactory } from "./room-transport.ts";
import { rtcNodeTransportFactory } from "./rtc-node-transport.ts";

export interface RoomTransportDeps {
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
}

export interface RoomTransports {
  readonly kind: string;
  readonly factory: RoomTransportFactory;
  /** Releases what the transports share (a media process); the rooms are left by then. */
  close(): Promise<void>;
}

export function createRoomTransports(_config: LiveKitConfig, deps: RoomTransportDeps): RoomTransports {
  return {
    kind: "rtc-node",
    factory: rtcNodeTransportFactory({ drop: (reason) => deps.metrics.agentEvents.inc({ event: reason }) }),
    async close() {},
  };
}
