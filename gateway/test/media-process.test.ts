/**
 * The media-process supervisor with the real `voice-media` binary, no LiveKit needed:
 * start-up handshake, a leave answered, a frame for a released session counted, its
 * environment, sessions told when the process dies or stops answering its pings, restart
 * with backoff, and the child gone after close(). What a real child rarely or never does
 * is in media-process-stand-in.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { processAlive } from "../../tools/sim/process-alive.ts";
import type { FromMedia } from "../src/agent/livekit/media/ipc-codec.ts";
import { MediaProcess } from "../src/agent/livekit/media/media-process.ts";
import { mediaBinaryPath } from "../src/agent/livekit/transports.ts";
import { eventually } from "./support/stack.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("media process supervisor", () => {
  let media: MediaProcess;
  const exits: (number | null)[] = [];
  const drops: string[] = [];
  const roundTrips: number[] = [];
  const hangs: number[] = [];
  const PING_INTERVAL_MS = 100;
  const HANG_TIMEOUT_MS = 400;

  before(() => {
    const built = spawnSync("bash", [path.join(root, "scripts/build-media.sh")], { encoding: "utf8" });
    assert.equal(built.status, 0, built.stderr);
    media = new MediaProcess({
      binary: mediaBinaryPath(),
      threads: 1,
      maxBacklogBytes: 1 << 20,
      restartDelayMs: 50,
      maxRestartDelayMs: 200,
      readyTimeoutMs: 5000,
      pingIntervalMs: PING_INTERVAL_MS,
      hangTimeoutMs: HANG_TIMEOUT_MS,
      events: {
        drop: (r) => drops.push(r),
        childCounts: () => {},
        exited: (code) => exits.push(code),
        started: () => {},
        answered: (ms) => roundTrips.push(ms),
        hung: (ms) => hangs.push(ms),
      },
    });
  });

  after(() => media.close());

  it("starts and answers a leave for a session it does not know", async () => {
    await media.start();
    assert.ok(media.running && media.pid);
    const got: FromMedia[] = [];
    const id = media.open((m) => got.push(m));
    assert.ok(id !== undefined);
    assert.ok(media.send({ kind: "leave", session: id }));
    await eventually(() => got.some((m) => m.kind === "left"), 2000, "left");
    media.release(id);
  });

  it("a frame for a session already released is counted, not delivered", async () => {
    await media.start();
    const got: FromMedia[] = [];
    const id = media.open((m) => got.push(m)) as number;
    media.release(id);
    // The child confirms a leave even for a session it does not know: the answer comes late.
    assert.ok(media.send({ kind: "leave", session: id }));
    await eventually(() => drops.includes("media_frame_unknown_session"), 2000, "counted");
    assert.deepEqual(got, []);
  });

  it("the child's environment is its Go runtime settings and nothing of the gateway's (no secret)", async () => {
    await media.start();
    const environ = readFileSync(`/proc/${media.pid}/environ`, "utf8").split("\0").filter(Boolean);
    assert.deepEqual(environ, ["GOMAXPROCS=1", "GOGC=50"]);
  });

  it("killed: its sessions are told at once, frames for it are refused, and it restarts", async () => {
    const got: FromMedia[] = [];
    const id = media.open((m) => got.push(m)) as number;
    const pid = media.pid as number;
    media.killForTest();
    await eventually(() => got.some((m) => m.kind === "disconnected"), 1000, "disconnected");
    assert.equal(media.sessions, 0);
    assert.equal(media.send({ kind: "leave", session: id }), false);
    assert.ok(drops.includes("media_down_control"));
    await eventually(() => media.running && media.pid !== pid, 3000, "restarted");
    assert.equal(processAlive(pid), false);
  });

  it("a running child answers its pings, and is not taken as hung", async () => {
    await media.start();
    const before = roundTrips.length;
    await eventually(() => roundTrips.length >= before + 5, 3000, "five answered pings");
    assert.deepEqual(hangs, []);
  });

  it("frozen (SIGSTOP): killed as hung after the hang timeout, its sessions told, and it restarts", async () => {
    await media.start();
    const got: FromMedia[] = [];
    media.open((m) => got.push(m));
    const pid = media.pid as number;
    process.kill(pid, "SIGSTOP");
    await eventually(() => got.some((m) => m.kind === "disconnected"), 5000, "disconnected");
    assert.equal(hangs.length, 1);
    assert.ok((hangs[0] as number) >= HANG_TIMEOUT_MS);
    assert.ok(drops.includes("media_hung"));
    await eventually(() => media.running && media.pid !== pid, 3000, "restarted");
    assert.equal(processAlive(pid), false);
  });

  it("close() ends the child through stdin EOF, with exit code 0", async () => {
    await media.start();
    const pid = media.pid as number;
    exits.length = 0;
    await media.close();
    assert.deepEqual(exits, [0]);
    assert.equal(processAlive(pid), false);
    assert.equal(media.running, false);
  });
});
