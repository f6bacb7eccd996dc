/** Room transport handlers for tests that look only at how a session's room was lost. */
import type { RoomTransportHandlers } from "../../src/agent/livekit/room-transport.ts";

/** Handlers that ignore every room event but the loss, which they note in `lost`. */
export function handlersNotingLoss(lost: string[] = []): RoomTransportHandlers {
  return {
    participantJoined() {},
    participantLeft() {},
    attributesChanged() {},
    data() {},
    text() {},
    agentAudio() {},
    disconnected: (reason) => lost.push(reason),
  };
}
