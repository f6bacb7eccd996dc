/**
 * Session ids name their owner. With a shared subscription any gateway instance may
 * receive a device's follow-up message; the session id it carries says which instance
 * (and which boot of it) holds the session, so the receiver can forward the message or,
 * if that owner is gone, answer `goodbye` at once (docs/broker-contract.md, coordination topics).
 *
 * Format: `<instanceId>-<bootId>-<random>`, e.g. `3-lk2x9a0c-4f0c9a1b2e3d4c5b`.
 * The firmware treats the value as an opaque string and echoes it.
 */
import { randomBytes } from "node:crypto";

export interface SessionOwner {
  readonly instanceId: number;
  readonly bootId: string;
}

const SESSION_ID = /^([1-9][0-9]{0,2})-([0-9a-z]{4,16})-([0-9a-f]{16})$/;

/** A boot id: unique per process start (time + randomness), base36. */
export function newBootId(now = Date.now()): string {
  const rand = randomBytes(3).readUIntBE(0, 3).toString(36).padStart(5, "0");
  return `${(now % 36 ** 6).toString(36).padStart(6, "0")}${rand}`.slice(0, 11);
}

export function newSessionId(owner: SessionOwner): string {
  return `${owner.instanceId}-${owner.bootId}-${randomBytes(8).toString("hex")}`;
}

export function parseSessionOwner(sessionId: string): SessionOwner | undefined {
  const m = SESSION_ID.exec(sessionId);
  if (!m) return undefined;
  return { instanceId: Number(m[1]), bootId: m[2] as string };
}
