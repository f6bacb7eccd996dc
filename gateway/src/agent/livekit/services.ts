/**
 * What every LiveKit room of one gateway instance shares: the server API clients, token
 * minting, agent dispatch, and the instance's counters. Secrets stay in here.
 */
import { AccessToken, AgentDispatchClient, RoomServiceClient } from "livekit-server-sdk";
import { parseDeviceClientId } from "../../protocol/client-id.ts";
import type { AgentSessionInfo } from "../agent-bridge.ts";
import type { AgentDispatchConfig } from "./options.ts";

export interface LiveKitOptions {
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** How the agent gets into a room: by name (LiveKit Agents), by webhook, or by itself. */
  readonly dispatch: AgentDispatchConfig;
  readonly emptyTimeoutS: number;
  readonly maxParticipants: number;
  readonly mcpTimeoutMs: number;
  readonly tokenTtlS: number;
}

export interface LiveKitEvents {
  roomOpened(room: string): void;
  roomClosed(room: string): void;
  failed(room: string, err: Error): void;
  drop(reason: string): void;
}

export interface LiveKitServices {
  readonly options: LiveKitOptions;
  readonly rooms: RoomServiceClient;
  readonly events: LiveKitEvents;
  token(room: string, info: AgentSessionInfo): Promise<string>;
  dispatch(room: string, info: AgentSessionInfo): Promise<void>;
}

/** The device's participant identity in its room: its MAC with colons (lowercase). */
export function participantIdentity(mac: string): string {
  return mac.toLowerCase();
}

/** The server API speaks HTTP(S) on the same host as the WebSocket URL. */
export function httpUrl(url: string): string {
  return url.replace(/^ws(s?):\/\//, "http$1://");
}

export function createLiveKitServices(options: LiveKitOptions, events: LiveKitEvents): LiveKitServices {
  const host = httpUrl(options.url);
  const rooms = new RoomServiceClient(host, options.apiKey, options.apiSecret);
  const dispatcher = new AgentDispatchClient(host, options.apiKey, options.apiSecret);
  return {
    options,
    rooms,
    events,
    async token(room, info) {
      // A token for this room only: the device participant can join, publish its voice
      // and data, and subscribe to the agent; it cannot create or administer rooms.
      // Identity and attributes as BUNNY's (device-protocol.md 5.1): the identity is the
      // MAC with colons, which never contains "agent" (how the agent is told apart).
      const uuid = parseDeviceClientId(info.clientId);
      const at = new AccessToken(options.apiKey, options.apiSecret, {
        identity: participantIdentity(info.mac),
        ttl: options.tokenTtlS,
        attributes: {
          device_mac: info.mac,
          device_uuid: (uuid.ok ? uuid.id.uuid : undefined) ?? "",
          room_type: "device_session",
        },
      });
      at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
      return at.toJwt();
    },
    async dispatch(room, info) {
      const metadata = JSON.stringify({ device_mac: info.mac, session_id: info.sessionId });
      const d = options.dispatch;
      if (d.kind === "agent") {
        await dispatcher.createDispatch(room, d.agentName, { metadata });
      } else if (d.kind === "webhook") {
        const res = await fetch(d.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(d.bearer ? { authorization: `Bearer ${d.bearer}` } : {}),
          },
          body: JSON.stringify({ room, url: options.url, device_mac: info.mac, session_id: info.sessionId }),
          signal: AbortSignal.timeout(10_000),
        });
        if (!res.ok) throw new Error(`agent webhook answered ${res.status}`);
      }
    },
  };
}
