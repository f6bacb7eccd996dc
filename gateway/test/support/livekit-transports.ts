/**
 * The room transports the LiveKit test suites run against: each suite runs once per entry.
 * `liveKitEnv` is what a gateway needs in its environment to use a server and a transport.
 */
import type { LiveKitProcess } from "../../../tools/sim/livekit-process.ts";

export const LIVEKIT_TRANSPORTS = ["process", "rtc-node"] as const;

export type LiveKitTransportName = (typeof LIVEKIT_TRANSPORTS)[number];

export function liveKitEnv(lk: LiveKitProcess, transport?: LiveKitTransportName): Record<string, string> {
  return {
    LIVEKIT_URL: lk.url,
    LIVEKIT_API_KEY: lk.apiKey,
    LIVEKIT_API_SECRET: lk.apiSecret,
    ...(transport ? { LIVEKIT_MEDIA: transport } : {}),
  };
}
