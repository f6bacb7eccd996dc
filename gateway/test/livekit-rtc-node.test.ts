/**
 * The `rtc-node` room transport (rtc-node-transport.ts) against a real LiveKit server, for
 * what only a real connection shows: a leave while the join is still connecting (as the
 * bridge's join timeout does) leaves no participant behind once the connection completes;
 * a leave frees the native audio source it published (its capture thread ends with it).
 * The rest of this transport is covered through the gateway in livekit.test.ts and
 * livekit-agents*.test.ts, which run once per transport.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import { AccessToken, RoomServiceClient } from "livekit-server-sdk";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { rtcNodeTransportFactory } from "../src/agent/livekit/rtc-node-transport.ts";
import { RoomEventsRecorder } from "./support/room-participants.ts";
import { eventually } from "./support/stack.ts";

/**
 * The threads of this process that run a native rtc-node audio source (libwebrtc names each
 * "AudioSourceCapture", cut to 15 characters): one lives as long as its source does.
 */
function audioSourceThreads(): number {
  return readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").startsWith("AudioSourceCapt");
    } catch {
      return false; // the thread ended while the list was read
    }
  }).length;
}

describe("the rtc-node room transport", () => {
  let lk: LiveKitProcess;
  let rooms: RoomServiceClient;

  before(async () => {
    lk = await startLiveKit();
    rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
  });

  async function identities(room: string): Promise<string[]> {
    return (await rooms.listParticipants(room)).map((p) => p.identity);
  }

  after(async () => {
    await lk.stop();
    // rtc-node's native FFI runtime keeps the process alive until disposed.
    await dispose();
  });

  it("a leave frees the audio source it published: its native thread ends with the session", async () => {
    const room = "rtc-node-leave-frees-source";
    await rooms.createRoom({ name: room });
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity: "device-leave-frees-source" });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    const before = audioSourceThreads();
    const transport = rtcNodeTransportFactory({ drop: () => {} })(
      { url: lk.url, roomName: room, token: await at.toJwt() },
      new RoomEventsRecorder(),
    );
    await transport.join();
    assert.equal(audioSourceThreads(), before + 1, "the published source runs one thread");
    await transport.leave();
    // Left to the garbage collector, or to the finalizers of the process's exit, it was freed
    // there under rtc-node's running threads: a test process aborted so at its exit.
    await eventually(() => audioSourceThreads() === before, 5000, "the source's thread ended");
  });

  it("a leave while connecting disconnects the connection once it completes", async () => {
    const room = "rtc-node-leave-while-connecting";
    const identity = "device-leave-while-connecting";
    await rooms.createRoom({ name: room });
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    const transport = rtcNodeTransportFactory({ drop: () => {} })(
      { url: lk.url, roomName: room, token: await at.toJwt() },
      new RoomEventsRecorder(),
    );
    const join = transport.join();
    // In the same tick: the connection cannot have completed, so leave() finds it unconnected.
    await transport.leave();
    await join; // the connection completed after the leave
    // Left behind, it would stay in the room for as long as the process lives. Nothing
    // announces the removal: the server's participant list is read until it is gone.
    await eventually(
      async () => !(await identities(room)).includes(identity),
      5000,
      `${identity} gone from the room`,
    );
  });
});
