/**
 * Ghost rooms: rooms this instance created in an earlier boot (a crash skips close()),
 * or whose session is no longer live. At start and periodically, they are deleted in
 * batches of 20, yielding to the event loop between batches so audio never waits on it.
 * Rooms of other instances, and rooms we did not name, are never touched.
 */
import type { SessionOwner } from "../../protocol/session-id.ts";
import { parseRoomName } from "./room-names.ts";

export interface SweepDeps {
  readonly me: SessionOwner;
  listRooms(): Promise<string[]>;
  deleteRoom(name: string): Promise<void>;
  /** Whether a session id is live on this instance right now. */
  isLive(sessionId: string): boolean;
}

export const SWEEP_BATCH = 20;

/** Returns the names deleted. */
export async function sweepGhostRooms(deps: SweepDeps): Promise<string[]> {
  const names = await deps.listRooms();
  const orphans = names.filter((name) => {
    const parts = parseRoomName(name);
    if (!parts || parts.owner.instanceId !== deps.me.instanceId) return false;
    return parts.owner.bootId !== deps.me.bootId || !deps.isLive(parts.sessionId);
  });
  const deleted: string[] = [];
  for (let i = 0; i < orphans.length; i += SWEEP_BATCH) {
    const batch = orphans.slice(i, i + SWEEP_BATCH);
    const results = await Promise.allSettled(batch.map((n) => deps.deleteRoom(n)));
    results.forEach((r, k) => {
      if (r.status === "fulfilled") deleted.push(batch[k] as string);
    });
    await new Promise((r) => setImmediate(r));
  }
  return deleted;
}
