/**
 * LiveKit room names of device sessions: `xz_<mac without colons>_<session id>`. The
 * session id names the owning gateway instance and boot (protocol/session-id.ts), so the
 * ghost-room sweep can tell this instance's orphans from other instances' live rooms.
 */
import { parseSessionOwner, type SessionOwner } from "../../protocol/session-id.ts";

const PREFIX = "xz_";

export function roomName(mac: string, sessionId: string): string {
  return `${PREFIX}${mac.replaceAll(":", "")}_${sessionId}`;
}

export interface RoomNameParts {
  readonly mac: string;
  readonly sessionId: string;
  readonly owner: SessionOwner;
}

/** Undefined for rooms this gateway did not name (never touched by the sweep). */
export function parseRoomName(name: string): RoomNameParts | undefined {
  const m = /^xz_([0-9a-f]{12})_(.+)$/.exec(name);
  if (!m) return undefined;
  const sessionId = m[2] as string;
  const owner = parseSessionOwner(sessionId);
  if (!owner) return undefined;
  const hex = m[1] as string;
  return { mac: hex.match(/../g)?.join(":") ?? hex, sessionId, owner };
}
