/**
 * The room transports the LiveKit test suites run against: each suite runs once per entry.
 * `transportEnv` is what a gateway needs in its environment to use one.
 */
export const LIVEKIT_TRANSPORTS = ["process", "rtc-node"] as const;

export type LiveKitTransportName = (typeof LIVEKIT_TRANSPORTS)[number];

export function transportEnv(transport: LiveKitTransportName): Record<string, string> {
  return { LIVEKIT_MEDIA: transport };
}
