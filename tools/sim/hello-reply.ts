/**
 * What a simulated device accepts as the server's hello reply: exactly what firmware
 * requires (docs/device-protocol.md section 2.4), or nothing.
 */

export type DeviceMessage = Record<string, unknown> & { type?: string };

export interface HelloReply {
  readonly sessionId: string;
  readonly server: string;
  readonly port: number;
  readonly key: Buffer;
  readonly nonce: Buffer;
  readonly sampleRate: number;
  readonly frameDurationMs: number;
}

/** What firmware requires of a hello reply (docs/device-protocol.md section 2.4). */
export function parseHelloReply(msg: DeviceMessage): HelloReply | undefined {
  if (msg.type !== "hello" || msg.transport !== "udp") return undefined;
  const udp = msg.udp as Record<string, unknown> | undefined;
  if (!udp || typeof udp.server !== "string" || typeof udp.port !== "number") return undefined;
  if (udp.port < 1 || udp.port > 65535) return undefined;
  const hex32 = /^[0-9a-fA-F]{32}$/;
  if (typeof udp.key !== "string" || !hex32.test(udp.key)) return undefined;
  if (typeof udp.nonce !== "string" || !hex32.test(udp.nonce)) return undefined;
  const audio = (msg.audio_params ?? {}) as Record<string, unknown>;
  return {
    sessionId: typeof msg.session_id === "string" ? msg.session_id : "",
    server: udp.server,
    port: udp.port,
    key: Buffer.from(udp.key, "hex"),
    nonce: Buffer.from(udp.nonce, "hex"),
    sampleRate: typeof audio.sample_rate === "number" ? audio.sample_rate : 16000,
    frameDurationMs: typeof audio.frame_duration === "number" ? audio.frame_duration : 60,
  };
}
