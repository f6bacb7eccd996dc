/**
 * LiveKit room names of device sessions: `<session id>_<mac, 12 hex>_conversation`, the
 * form the deployed agent requires (device-protocol.md 5.7: Agent B parses the MAC from the
 * second-to-last part and leaves any room whose last part is not `conversation`). Session
 * ids contain no `_` and name the owning gateway instance and boot
 * (protocol/session-id.ts), so the ghost-room sweep can tell this instance's orphans from
 * other instances' live rooms.
 */
import { parseSessionOwner, type SessionOwner } from "../../protocol/session-id.ts";

const MODE = "conversation";

export function roomName(mac: string, sessionId: string): string {
  if (sessionId.includes("_")) throw new Error("a session id must not contain '_'");
  return `${sessionId}_${mac.replaceAll(":", "").toLowerCase()}_${MODE}`;
}

export interface RoomNameParts {
  readonly mac: string;
  readonly sessionId: string;
  readonly owner: SessionOwner;
}

/** Undefined for rooms this gateway did not name (never touched by the sweep). */
export function parseRoomName(name: string): RoomNameParts | undefined {
  const m = /^([^_]+)_([0-9a-f]{12})_conversation$/.exec(name);
  if (!m) return undefined;
  const sessionId = m[1] as string;
  const owner = parseSessionOwner(sessionId);
  if (!owner) return undefined;
  const hex = m[2] as string;
  return { mac: hex.match(/../g)?.join(":") ?? hex, sessionId, owner };
}
