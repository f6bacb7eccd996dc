import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rms } from "../../tools/sim/speech-signal.ts";
import { type Stack, startStack } from "./support/stack.ts";

describe("a device like current firmware, served end to end by the echo agent", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    await stack.startGateway();
  });
  after(async () => {
    await stack.stop();
  });

  it("gets a hello reply with udp server, port, 16-byte key and the header-template nonce", async () => {
    const device = await stack.device();
    const reply = await device.hello();
    assert.equal(reply.server, "127.0.0.1");
    assert.equal(reply.port, stack.gateways[0]?.udpPort);
    assert.equal(reply.key.length, 16);
    // type 1, flags 0, len 0, connection id, timestamp 0, sequence 0
    assert.equal(reply.nonce[0], 1);
    assert.equal(reply.nonce.readUInt16BE(2), 0);
    assert.notEqual(reply.nonce.readUInt32BE(4), 0);
    assert.equal(reply.nonce.readUInt32BE(8), 0);
    assert.equal(reply.nonce.readUInt32BE(12), 0);
    assert.equal(reply.sampleRate, 24000);
    assert.equal(reply.frameDurationMs, 60);
    await device.close();
  });

  it("hears its own voice back after a pause (auto mode), framed by tts start and stop", async () => {
    const device = await stack.device();
    await device.hello();
    device.listen("auto");
    let loudest = 0;
    device.on("pcm", (pcm: Buffer) => {
      loudest = Math.max(loudest, rms(pcm));
    });
    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    device.talk(1200);
    await device.waitForMessage((m) => m.type === "tts" && m.state === "start", 10_000);
    await stop;
    assert.ok(device.stats.framesReceived >= 15, `received ${device.stats.framesReceived} frames`);
    assert.ok(loudest > 200, `echoed audio is speech, not silence (rms ${loudest.toFixed(0)})`);
    assert.deepEqual(device.stats.errors, {});
    assert.equal(device.stats.sequenceGaps, 0);
    await device.goodbye();
    await device.close();
  });

  it("gets each frame straight back in realtime mode, sequences strictly increasing from 1", async () => {
    const device = await stack.device();
    await device.hello();
    device.listen("realtime");
    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop");
    device.talk(1200);
    await stop;
    assert.deepEqual(device.stats.errors, {});
    assert.equal(device.stats.framesReceived, 20);
    assert.equal(device.stats.roundTripMs.length, 20);
    // One continuous utterance is one turn: a single tts start and a single tts stop.
    const tts = device.messages.filter((m) => m.type === "tts").map((m) => m.state);
    assert.deepEqual(tts, ["start", "stop"]);
    await device.close();
  });

  it("says goodbye: the session closes, and no goodbye comes back (the device already left)", async () => {
    const device = await stack.device();
    const reply = await device.hello();
    device.send({ type: "goodbye", session_id: reply.sessionId });
    // The next message for that session is answered goodbye (session_unknown) by the same
    // instance, over the same ordered connection: a goodbye for the device's own goodbye
    // would have come first.
    const stale = device.waitForMessage((m) => m.type === "goodbye");
    device.send({ type: "listen", session_id: reply.sessionId, state: "start", mode: "auto" });
    const msg = await stale;
    assert.equal(msg.session_id, reply.sessionId);
    assert.equal(msg.reason, "session_unknown");
    await device.close();
  });

  it("a second hello replaces the session: new key, new connection id, no goodbye for the old one", async () => {
    const device = await stack.device();
    const first = await device.hello();
    const second = await device.hello();
    assert.notEqual(second.sessionId, first.sessionId);
    assert.notDeepEqual(second.key, first.key);
    assert.notEqual(second.nonce.readUInt32BE(4), first.nonce.readUInt32BE(4));
    device.listen("realtime");
    device.talk(300);
    await device.waitForAudio(3);
    assert.deepEqual(device.stats.errors, {});
    // The device moved on by itself: a goodbye for the replaced session could reach a
    // firmware that is between the two replies and close its channel.
    assert.ok(!device.messages.some((m) => m.type === "goodbye" && m.session_id === first.sessionId));
    await device.close();
  });
});
