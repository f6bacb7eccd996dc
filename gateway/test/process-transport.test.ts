/**
 * The process transport's join against a stand-in media process (no child, no LiveKit): a
 * join frame that cannot be sent, one the media process refuses, or one the transport left
 * before its answer, fails the join at once instead of after the join timeout.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FromMedia, ToMedia } from "../src/agent/livekit/media/ipc-codec.ts";
import type { MediaFrameHandler, MediaProcess } from "../src/agent/livekit/media/media-process.ts";
import { ProcessTransport } from "../src/agent/livekit/media/process-transport.ts";
import type { OpusPool } from "../src/audio/opus-pool.ts";
import { handlersNotingLoss } from "./support/room-handlers.ts";

/** What ProcessTransport uses of a MediaProcess; `answer` decides what each frame gets. */
function fakeMedia(answer: (m: ToMedia, reply: (f: FromMedia) => void) => string | undefined) {
  const sent: ToMedia[] = [];
  const handlers = new Map<number, MediaFrameHandler>();
  const media = {
    running: true,
    start: async () => {},
    open(handler: MediaFrameHandler) {
      handlers.set(7, handler);
      return 7;
    },
    release: (id: number) => handlers.delete(id),
    isOpen: (id: number) => handlers.has(id),
    deliver(m: ToMedia) {
      sent.push(m);
      return answer(m, (f) => queueMicrotask(() => handlers.get(m.session)?.(f)));
    },
    send(m: ToMedia) {
      return this.deliver(m) === undefined;
    },
  };
  return { media: media as unknown as MediaProcess, sent, handlers };
}

function transport(media: MediaProcess): ProcessTransport {
  return new ProcessTransport({ url: "ws://lk", roomName: "r", token: "t" }, handlersNotingLoss(), {
    media,
    pool: {} as OpusPool,
    drop: () => {},
    // Far beyond the test's own timeout: a join that waits for it fails the test.
    joinTimeoutMs: 60_000,
    leaveTimeoutMs: 60_000,
  });
}

describe("process transport join", () => {
  it("a join frame the media process did not take fails the join at once, with the reason", async () => {
    const {
      media,
      sent,
      handlers: open,
    } = fakeMedia((m, reply) => {
      if (m.kind === "join") return "media_down_control";
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    await assert.rejects(transport(media).join(), /join not sent to the media process: media_down_control/);
    assert.deepEqual(
      sent.map((m) => m.kind),
      ["join", "leave"],
    );
    assert.equal(open.size, 0, "the session is released");
  });

  it("a join the media process refuses (a duplicate or malformed join) fails at once", async () => {
    const { media, handlers: open } = fakeMedia((m, reply) => {
      if (m.kind === "join") reply({ kind: "join_failed", session: m.session, reason: "duplicate join" });
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    await assert.rejects(transport(media).join(), /join failed: duplicate join/);
    assert.equal(open.size, 0);
  });

  it("a join answered joined resolves", async () => {
    const { media } = fakeMedia((m, reply) => {
      if (m.kind === "join") reply({ kind: "joined", session: m.session, identity: "gw" });
      return undefined;
    });
    await transport(media).join();
  });

  it("a transport left while its join waits for joined fails the join at once", async () => {
    let joinTaken: () => void = () => {};
    const taken = new Promise<void>((resolve) => {
      joinTaken = resolve;
    });
    const { media, handlers: open } = fakeMedia((m, reply) => {
      if (m.kind === "join") joinTaken(); // taken, and not answered yet
      if (m.kind === "leave") reply({ kind: "left", session: m.session });
      return undefined;
    });
    const t = transport(media);
    const joining = t.join().then(
      () => "joined",
      (err: Error) => err.message,
    );
    await taken;
    await t.leave();
    const outcome = await Promise.race([
      joining,
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 1 s"), 1000).unref()),
    ]);
    assert.equal(outcome, "transport left");
    assert.equal(open.size, 0, "the session is released");
  });
});
