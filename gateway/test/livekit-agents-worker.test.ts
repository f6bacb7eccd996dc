/**
 * A real LiveKit Agents worker (Python livekit-agents 1.2, tools/agents/) against the real
 * LiveKit server and the gateway, with a simulated device: the framework's own signals
 * (`lk.agent.state` frames turns, `lk.transcription` carries the transcripts) proven with
 * the framework itself rather than our idea of it. The agent's STT, LLM and TTS are fakes
 * with fixed texts (tools/agents/fakes.py); everything between them and the device is real.
 *
 * The steps of one conversation run in order on one device: greeting, a turn, an aborted
 * turn. The worker needs .cache/agents-venv (scripts/setup-agents-venv.sh): without it the
 * file fails under CI and is skipped, loudly, elsewhere.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { dispose } from "@livekit/rtc-node";
import { RoomServiceClient } from "livekit-server-sdk";
import {
  AGENTS_VENV_SETUP,
  type AgentScript,
  type AgentsWorker,
  agentsVenvStatus,
  fakeTtsSeconds,
  startAgentsWorker,
} from "../../tools/sim/agents-worker-process.ts";
import type { DeviceMessage, SimulatedDevice } from "../../tools/sim/device.ts";
import { type LiveKitProcess, startLiveKit } from "../../tools/sim/livekit-process.ts";
import { rms } from "../../tools/sim/speech-signal.ts";
import { roomName } from "../src/agent/livekit/room-names.ts";
import { LIVEKIT_TRANSPORTS, type LiveKitTransportName, liveKitEnv } from "./support/livekit-transports.ts";
import { eventually, type Stack, startStack } from "./support/stack.ts";

const SCRIPT: AgentScript = {
  greeting: "Hello, I am the test agent.",
  transcript: "what is the weather like today",
  reply: "Here is the fixed reply of the test agent, long enough to be interrupted on the way.",
};
const FRAME_MS = 60;
/** Dispatch, a job process and the session's start all come before the first greeting. */
const FIRST_WORDS_MS = 30_000;
/** Downstream frames the gateway may already have sent when the device's abort arrives. */
const IN_FLIGHT_FRAMES = 4;

const venv = agentsVenvStatus();
const missing = venv.ready ? undefined : `${venv.why}: run \`${AGENTS_VENV_SETUP}\` first`;
const skip = missing !== undefined && process.env.CI === undefined ? missing : false;
if (skip) console.error(`\n*** livekit-agents-worker.test.ts SKIPPED: ${skip} ***\n`);

// rtc-node (the gateway's room transport) keeps a process-wide native runtime: release it
// once, after every test of this file.
after(async () => {
  await dispose();
});

/** What the device heard of one agent turn: framing, frames and loudness. */
interface HeardTurn {
  readonly starts: number;
  readonly stops: number;
  readonly frames: number;
  readonly loudest: number;
}

describe("a real LiveKit Agents worker, through the gateway, to a simulated device", { skip }, () => {
  // One server and one worker for every transport: each conversation is its own room, so
  // its own job in the worker.
  let lk: LiveKitProcess;
  let worker: AgentsWorker | undefined;

  before(async () => {
    if (missing) throw new Error(missing); // under CI: fail, naming the command
    lk = await startLiveKit();
    worker = await startAgentsWorker(lk, { script: SCRIPT });
  });

  after(async () => {
    await worker?.stop();
    await lk?.stop();
  });

  for (const transport of LIVEKIT_TRANSPORTS) {
    describe(`over ${transport}`, () => conversation(transport, () => lk));
  }
});

/** The steps of one conversation, in order, on one device of a gateway using `transport`. */
function conversation(transport: LiveKitTransportName, server: () => LiveKitProcess): void {
  let stack: Stack | undefined;
  let rooms: RoomServiceClient;
  let device: SimulatedDevice;
  let room: string;

  before(async () => {
    const lk = server();
    rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
    stack = await startStack();
    await stack.startGateway({
      ...liveKitEnv(lk, transport),
    });
    device = await stack.device();
    const reply = await device.hello();
    room = roomName(device.mac, reply.sessionId);
    // Auto mode, as firmware: half duplex, silence between utterances. Its first (silent)
    // packet tells the gateway the device's UDP address, which the greeting waits for.
    device.listen("auto");
    device.talk(0);
  });

  after(async () => {
    await stack?.stop();
  });

  /** The agent's `lk.agent.state` attribute, as the server has it. */
  async function agentState(): Promise<string | undefined> {
    const ps = await rooms.listParticipants(room).catch(() => []);
    return ps.map((p) => p.attributes["lk.agent.state"]).find((s) => s !== undefined);
  }

  /** Records one turn from its `tts start` to its `tts stop`. */
  async function hearTurn(startTimeoutMs: number): Promise<HeardTurn> {
    let starts = 0;
    let stops = 0;
    let frames = 0;
    let loudest = 0;
    const onMessage = (m: DeviceMessage) => {
      if (m.type !== "tts") return;
      if (m.state === "start") starts++;
      if (m.state === "stop") stops++;
    };
    const onPcm = (pcm: Buffer) => {
      frames++;
      loudest = Math.max(loudest, rms(pcm));
    };
    device.on("message", onMessage);
    device.on("pcm", onPcm);
    try {
      await device.waitForMessage((m) => m.type === "tts" && m.state === "start", startTimeoutMs);
      await device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    } finally {
      device.off("message", onMessage);
      device.off("pcm", onPcm);
    }
    return { starts, stops, frames, loudest };
  }

  function assertWholeTurn(turn: HeardTurn, text: string): void {
    const expected = (fakeTtsSeconds(text) * 1000) / FRAME_MS;
    assert.equal(turn.starts, 1, "one tts start");
    assert.equal(turn.stops, 1, "one tts stop");
    assert.ok(
      turn.frames >= expected * 0.8 && turn.frames <= expected * 1.3 + 5,
      `${turn.frames} frames heard, the agent spoke about ${expected.toFixed(0)}`,
    );
    assert.ok(turn.loudest > 1000, `the agent's voice heard (rms ${turn.loudest.toFixed(0)})`);
  }

  function sentences(): string[] {
    return device.messages
      .filter((m) => m.type === "tts" && m.state === "sentence_start")
      .map((m) => String(m.text));
  }

  it("the device hears the agent's greeting without speaking first", async () => {
    const greeting = await hearTurn(FIRST_WORDS_MS);
    assertWholeTurn(greeting, SCRIPT.greeting);
    await eventually(
      () => sentences().includes(SCRIPT.greeting),
      5_000,
      "the greeting as tts sentence_start",
    );
    assert.deepEqual(device.stats.errors, {});
  });

  it("the device's speech comes back as stt with the transcript, then the reply framed by one tts start and stop", async () => {
    const stt = device.waitForMessage((m) => m.type === "stt", 15_000);
    const reply = hearTurn(15_000);
    device.talk(1200);
    assert.equal((await stt).text, SCRIPT.transcript);
    assertWholeTurn(await reply, SCRIPT.reply);
    await eventually(() => sentences().includes(SCRIPT.reply), 5_000, "the reply as tts sentence_start");
    assert.equal(await agentState(), "listening");
    assert.deepEqual(device.stats.errors, {});
  });

  it("a device abort stops the reply, the agent stops speaking, and nothing resumes", async () => {
    const stt = device.waitForMessage((m) => m.type === "stt", 15_000);
    const start = device.waitForMessage((m) => m.type === "tts" && m.state === "start", 15_000);
    device.talk(1200);
    await stt;
    await start;
    const startedAt = Date.now();
    await device.waitForAudio(10, 5_000); // 0.6 s into a reply of about 3.8 s

    const stop = device.waitForMessage((m) => m.type === "tts" && m.state === "stop", 2_000);
    const framesAtAbort = device.stats.framesReceived;
    const messagesAtAbort = device.messages.length;
    device.send({ session_id: device.session?.sessionId ?? "", type: "abort" });
    await stop;
    // abort_playback reached the agent: the framework itself left `speaking`.
    const deadline = Date.now() + 5_000;
    while ((await agentState()) === "speaking") {
      assert.ok(Date.now() < deadline, "the agent still speaking 5 s after the abort");
      await new Promise((r) => setTimeout(r, 100));
    }
    // An absence check: wait until the reply would have ended had it gone on, and a little.
    const replyEnd = startedAt + fakeTtsSeconds(SCRIPT.reply) * 1000 + 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, replyEnd - Date.now())));
    const after = device.stats.framesReceived - framesAtAbort;
    assert.ok(after <= IN_FLIGHT_FRAMES, `${after} frames after the abort`);
    const restarted = device.messages
      .slice(messagesAtAbort)
      .filter((m) => m.type === "tts" && m.state === "start");
    assert.deepEqual(restarted, [], "no tts start after the abort");
    assert.deepEqual(device.stats.errors, {});
  });
}
