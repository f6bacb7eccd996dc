/**
 * Small pure helpers for the room's signals: who the agent is, whether a piece of agent
 * audio is voice, and whether a device text repeats one just sent.
 */
import type { RemoteParticipantInfo } from "../room-transport.ts";

/**
 * The agent: a participant of kind agent (LiveKit Agents workers), or whose identity
 * contains "agent" (BUNNY's rule, for agents that join as ordinary participants).
 */
export function isAgentParticipant(p: Pick<RemoteParticipantInfo, "identity" | "kind">): boolean {
  return p.kind === "agent" || p.identity.includes("agent");
}

/** Agent frames with every |sample| under this are silence (not worth a packet). */
export const SILENCE_PEAK = 10;

/** PCM16 LE: true if any sample reaches SILENCE_PEAK. */
export function isVoiced(pcm: Buffer): boolean {
  const n = pcm.length >> 1;
  for (let i = 0; i < n; i++) {
    const s = pcm.readInt16LE(i * 2);
    if (s >= SILENCE_PEAK || s <= -SILENCE_PEAK) return true;
  }
  return false;
}

export interface RecentText {
  readonly text: string;
  readonly at: number;
}

/** The same text within this window is one message that came by two paths. */
export const REPEAT_WINDOW_MS = 5000;

export function repeatsRecent(last: RecentText | undefined, text: string, now: number): boolean {
  return last !== undefined && last.text === text && now - last.at < REPEAT_WINDOW_MS;
}
