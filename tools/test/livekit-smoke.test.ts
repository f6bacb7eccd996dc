/**
 * Smoke test for the real LiveKit server: two rtc-node participants in one room, one
 * publishes a 440 Hz sine, the other must hear it. Proves the binary, the loopback-only
 * config and the Node SDKs work together before tests build on them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, it } from "node:test";
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  dispose,
  LocalAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from "@livekit/rtc-node";
import { AccessToken, RoomServiceClient } from "livekit-server-sdk";
import { type LiveKitProcess, startLiveKit } from "../sim/livekit-process.ts";

const RATE = 16000;
const FRAME = RATE / 50; // 20 ms

let lk: LiveKitProcess;
before(async () => {
  lk = await startLiveKit();
});
after(async () => {
  await lk?.stop();
  // rtc-node's native FFI runtime keeps the process alive until it is disposed.
  await dispose();
});

async function token(identity: string, room: string): Promise<string> {
  const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  return at.toJwt();
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

it("listens on 127.0.0.1 only", { skip: !hasSs() && "ss is not installed" }, () => {
  const mine = execFileSync("ss", ["-Hlntup"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes(`pid=${lk.process.pid},`));
  assert.ok(mine.length >= 2, `expected the HTTP/WS port and the RTC UDP port, got:\n${mine.join("\n")}`);
  for (const line of mine) {
    const local = line.trim().split(/\s+/)[4] ?? "";
    assert.match(local, /^127\.0\.0\.1:\d+$/, line);
  }
});

it("carries a sine from one participant to another", { timeout: 30_000 }, async (t) => {
  const roomName = `smoke-${process.pid}`;
  const rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
  await rooms.createRoom({ name: roomName, emptyTimeout: 30 });

  const speaker = new Room();
  const listener = new Room();
  const source = new AudioSource(RATE, 1);
  let speaking = true;
  try {
    const subscribed = new Promise<RemoteTrack>((resolve) => {
      listener.on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind === TrackKind.KIND_AUDIO) resolve(track);
      });
    });
    await listener.connect(lk.url, await token("listener", roomName), {
      autoSubscribe: true,
      dynacast: false,
    });
    await speaker.connect(lk.url, await token("speaker", roomName), { autoSubscribe: true, dynacast: false });

    const track = LocalAudioTrack.createAudioTrack("sine", source);
    const opts = new TrackPublishOptions();
    opts.source = TrackSource.SOURCE_MICROPHONE;
    await speaker.localParticipant!.publishTrack(track, opts);

    // captureFrame resolves at about the pace of real time (the native source queues and
    // paces it), so this loop needs no timer of its own.
    const sending = (async () => {
      let n = 0;
      while (speaking) {
        const pcm = new Int16Array(FRAME);
        for (let i = 0; i < FRAME; i++, n++)
          pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / RATE));
        await source.captureFrame(new AudioFrame(pcm, RATE, 1, FRAME));
      }
    })();

    const remote = await subscribed;
    // The first decoded frames are silence while the jitter buffer fills; wait for the tone.
    let loudest = 0;
    for await (const frame of new AudioStream(remote, { sampleRate: RATE, numChannels: 1 })) {
      loudest = Math.max(loudest, rms(frame.data));
      if (loudest > 1000) break;
    }
    // A 8000-peak sine has an RMS of ~5657; Opus keeps it within a few percent.
    assert.ok(loudest > 1000, `loudest frame RMS ${loudest}`);
    t.diagnostic(`first loud frame: RMS ${Math.round(loudest)}`);

    speaking = false;
    await sending;
    await rooms.deleteRoom(roomName);
    assert.equal((await rooms.listRooms([roomName])).length, 0);
  } finally {
    speaking = false;
    await source.close();
    await speaker.disconnect();
    await listener.disconnect();
  }
});

function hasSs(): boolean {
  try {
    execFileSync("ss", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
