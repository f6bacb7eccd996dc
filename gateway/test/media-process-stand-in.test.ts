/**
 * The media-process supervisor and the process transport with stand-in children (shell
 * scripts writing the media framing, support/stand-in-media.ts) for what the real binary
 * rarely or never does: another framing version, a room lost in the same read as its join's
 * answer, a second ready, a corrupt stream, dying under 1,000 sessions, a stderr flood, a
 * slow start, a slow close, and an answer left unread by a stall of the gateway's own loop.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MEDIA_PROTOCOL_VERSION } from "../src/agent/livekit/media/ipc-codec.ts";
import { MediaProcess } from "../src/agent/livekit/media/media-process.ts";
import { ProcessTransport } from "../src/agent/livekit/media/process-transport.ts";
import type { RoomTransportHandlers } from "../src/agent/livekit/room-transport.ts";
import type { OpusPool } from "../src/audio/opus-pool.ts";
import { handlersNotingLoss } from "./support/room-handlers.ts";
import { eventually } from "./support/stack.ts";
import { fromMediaFrame, ipcString, printfBytes, standInMedia } from "./support/stand-in-media.ts";

/** A supervisor of `binary` that records what it reports; it restarts nothing within a test. */
function supervise(binary: string, pingIntervalMs: number, hangTimeoutMs: number) {
  const drops: string[] = [];
  const hangs: number[] = [];
  const started: number[] = [];
  const answers: number[] = [];
  const stderrTails: string[] = [];
  const media = new MediaProcess({
    binary,
    threads: 1,
    maxBacklogBytes: 1 << 20,
    restartDelayMs: 60_000,
    maxRestartDelayMs: 60_000,
    readyTimeoutMs: 5000,
    pingIntervalMs,
    hangTimeoutMs,
    events: {
      drop: (r) => drops.push(r),
      childCounts: () => {},
      exited: (_code, _signal, stderrTail) => stderrTails.push(stderrTail),
      started: (pid) => started.push(pid),
      answered: (ms) => answers.push(ms),
      hung: (ms) => hangs.push(ms),
    },
  });
  return { media, drops, hangs, started, answers, stderrTails };
}

/** A session's transport over `media` (no LiveKit behind the stand-ins, no codec used). */
function transportOver(media: MediaProcess, handlers: RoomTransportHandlers, joinTimeoutMs: number) {
  return new ProcessTransport({ url: "ws://unused", roomName: "r", token: "t" }, handlers, {
    media,
    pool: {} as OpusPool,
    drop: () => {},
    joinTimeoutMs,
    leaveTimeoutMs: 500,
  });
}

describe("media process supervisor and process transport, with a stand-in child", () => {
  const READY = fromMediaFrame(0x80, 0, ipcString(MEDIA_PROTOCOL_VERSION));

  it("a binary that speaks another framing version is refused, with the command that fixes it", async () => {
    // What a media binary of another framing would say: ready, "voice-media 0".
    const { binary, dispose } = standInMedia([
      printfBytes(fromMediaFrame(0x80, 0, ipcString("voice-media 0"))),
      "exec cat",
    ]);
    const { media: stale, drops: staleDrops } = supervise(binary, 1000, 3000);
    try {
      await assert.rejects(
        stale.start(),
        new RegExp(
          `speaks "voice-media 0", this gateway "${MEDIA_PROTOCOL_VERSION}": rebuild it with npm run build`,
        ),
      );
      assert.deepEqual(staleDrops, ["media_version_mismatch"]);
      assert.equal(stale.running, false);
    } finally {
      await stale.close();
      dispose();
    }
  });

  it("a room lost in the same pipe read as its join's answer is reported, not swallowed", async () => {
    // The child answers the first session's join (the first frame it gets: pings are a
    // minute apart) with joined and, at once, disconnected: one write, so one read here.
    const answer = Buffer.concat([
      fromMediaFrame(0x81, 1, ipcString("gw")),
      fromMediaFrame(0x83, 1, ipcString("room deleted")),
    ]);
    const child = standInMedia([
      printfBytes(READY),
      "head -c 1 >/dev/null",
      printfBytes(answer),
      "exec cat >/dev/null",
    ]);
    const { media } = supervise(child.binary, 60_000, 180_000);
    const lost: string[] = [];
    const handlers = handlersNotingLoss(lost);
    try {
      await media.start();
      const t = transportOver(media, handlers, 60_000);
      await t.join();
      // Never a session that believes it is in a room that is gone.
      await eventually(() => lost.length === 1, 1000, "the loss reported");
      await t.leave();
    } finally {
      await media.close();
      child.dispose();
    }
  });

  it("a second ready from a running child is counted and ignored: no liveness timer outlives the child", async () => {
    const child = standInMedia([printfBytes(Buffer.concat([READY, READY])), "exec cat >/dev/null"]);
    const PING_INTERVAL_MS = 20;
    const HANG_TIMEOUT_MS = 200;
    const { media, drops, hangs, started } = supervise(child.binary, PING_INTERVAL_MS, HANG_TIMEOUT_MS);
    try {
      await media.start();
      // Both readies came in one write.
      await eventually(() => drops.length === 1, 2000, "the second ready counted");
      await media.close();
      // Past the hang timeout: a probe left running would judge the gone child hung.
      await new Promise((r) => setTimeout(r, 3 * HANG_TIMEOUT_MS));
      assert.deepEqual(hangs, [], "no hang verdict on a child that has exited");
      assert.equal(started.length, 1);
      assert.deepEqual(drops, ["media_frame_unexpected_ready"]);
    } finally {
      await media.close();
      child.dispose();
    }
  });

  it("after a corrupt stream, nothing more read from the child is taken for frames", async () => {
    // What is still in the pipe when the kill lands, written here by a process the kill
    // does not reach: a well-formed frame, read from a stream that has lost its framing.
    const late = fromMediaFrame(0x83, 1, ipcString("read after the corruption"));
    const child = standInMedia([
      printfBytes(READY),
      "head -c 1 >/dev/null",
      `(sleep 0.3; ${printfBytes(late)}) &`,
      printfBytes(Buffer.alloc(4)),
      "exec cat >/dev/null",
    ]);
    const { media, drops } = supervise(child.binary, 50, 60_000);
    try {
      await media.start();
      const got: string[] = [];
      media.open((m) => got.push(m.kind === "disconnected" ? m.reason : m.kind));
      await eventually(() => got.includes("media process exited"), 3000, "the session told");
      assert.deepEqual(got, ["media process exited"]);
      assert.deepEqual(drops, ["media_stream_corrupt"]);
    } finally {
      await media.close();
      child.dispose();
    }
  });

  it("a child dying under 1,000 sessions (joins and leaves pending) settles every one, with no unhandled rejection", async () => {
    // Sessions 1-500 are answered joined; 501-1000 wait for their join's answer.
    const joined = Buffer.concat(
      Array.from({ length: 500 }, (_, i) => fromMediaFrame(0x81, i + 1, ipcString("gw"))),
    );
    const child = standInMedia([
      printfBytes(READY),
      "head -c 1 >/dev/null",
      "sleep 0.5",
      printfBytes(joined),
      "exec cat >/dev/null",
    ]);
    const { media } = supervise(child.binary, 60_000, 180_000);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      await media.start();
      const lost: string[] = [];
      const transports = Array.from({ length: 1000 }, () =>
        transportOver(media, handlersNotingLoss(lost), 60_000),
      );
      const joins = transports.map((t) => t.join());
      await Promise.all(joins.slice(0, 500));
      // Half the joined ones leave: their leaves wait for left, which never comes.
      const leaves = transports.slice(0, 250).map((t) => t.leave());
      const pendingJoins = joins.slice(500).map((j) =>
        j.then(
          () => "joined",
          () => "rejected",
        ),
      );
      const t0 = performance.now();
      media.killForTest();
      const outcomes = await Promise.all(pendingJoins);
      await Promise.all(leaves);
      const took = performance.now() - t0;
      // At once, not by a timeout: a leave waits at most 500 ms here (transportOver).
      assert.ok(took < 400, `settled after ${took.toFixed(0)} ms`);
      assert.deepEqual(new Set(outcomes), new Set(["rejected"]));
      assert.equal(lost.length, 250, "every joined session not leaving is told");
      assert.equal(media.sessions, 0);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await media.close();
      child.dispose();
    }
  });

  it("a child flooding its stderr is not held up by it, and the gateway keeps only its tail", async () => {
    // 32 MiB before ready: a gateway that stopped reading stderr would leave the child
    // blocked on its 64 KiB pipe, never ready.
    const child = standInMedia(["head -c 33554432 /dev/zero >&2", printfBytes(READY), "exec cat >/dev/null"]);
    const { media, stderrTails } = supervise(child.binary, 60_000, 180_000);
    try {
      await media.start();
      media.killForTest();
      await eventually(() => stderrTails.length === 1, 2000, "the exit reported");
      const kept = stderrTails[0]?.length ?? 0;
      // The last 20 chunks of at most 64 KiB each (a pipe read).
      assert.ok(kept > 0 && kept <= 20 * 65536, `kept ${kept} bytes of stderr`);
    } finally {
      await media.close();
      child.dispose();
    }
  });

  it("a transport left while its join waits for the media process to start leaves nothing open", async () => {
    // Ready 300 ms after start: the join is waiting in start() when leave() comes.
    const child = standInMedia(["sleep 0.3", printfBytes(READY), "exec cat >/dev/null"]);
    const { media } = supervise(child.binary, 60_000, 180_000);
    const handlers = handlersNotingLoss();
    try {
      const t = transportOver(media, handlers, 1000);
      const joining = t.join();
      await t.leave();
      await assert.rejects(joining);
      assert.equal(media.sessions, 0, "no session left open in the media process");
    } finally {
      await media.close();
      child.dispose();
    }
  });

  it("a child slow to leave its rooms on close is not judged hung: pings stop with close()", async () => {
    // It reads nothing, so it answers no ping and ignores its stdin's end: only the grace
    // period's SIGKILL ends it, long after a ping would have been judged unanswered.
    const child = standInMedia([printfBytes(READY), "exec sleep 30"]);
    const { media, drops, hangs } = supervise(child.binary, 20, 200);
    try {
      await media.start();
      await media.close(800);
      assert.deepEqual(hangs, []);
      assert.deepEqual(drops, []);
    } finally {
      child.dispose();
    }
  });

  it("an answer left unread by a stall of the gateway's own loop keeps the child", async () => {
    // Ping 1 goes 400 ms after ready (P); the child answers 800 ms after reading it. The
    // gateway's loop is blocked from P+600 to P+1150, so the tick due at P+800 runs at P+1150:
    // on time enough to judge (750 ms after the one before) and 1150 ms after the ping, past
    // the hang timeout, with the answer waiting in the pipe.
    const PONG_1 = fromMediaFrame(0x8c, 0, Buffer.from([1, 0, 0, 0]));
    const child = standInMedia([
      printfBytes(READY),
      "head -c 13 >/dev/null", // ping 1: 9 bytes of header, its u32
      "sleep 0.8",
      printfBytes(PONG_1),
      "exec cat >/dev/null",
    ]);
    const { media, hangs, answers } = supervise(child.binary, 400, 1000);
    try {
      await media.start();
      const readyAt = performance.now();
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          while (performance.now() < readyAt + 1550) {
            // the gateway's loop, blocked
          }
          resolve();
        }, 1000),
      );
      await eventually(() => answers.length === 1, 2000, "the answer read");
      assert.deepEqual(hangs, []);
      assert.equal(media.running, true);
    } finally {
      await media.close();
      child.dispose();
    }
  });
});
