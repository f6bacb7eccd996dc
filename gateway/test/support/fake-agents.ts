/**
 * Faithful fakes of the deployed agent's two versions (device-protocol.md 5.7; read from
 * k811069/Bunny_serve livekit-server/main.py and src/mcp/*.py), as rtc-node participants
 * in a real LiveKit server. What they do is what the real ones do, in the ways the gateway
 * can observe:
 *
 * - Join: a dispatcher (fake-agent-dispatcher.ts) polls the server's room list and sends
 *   one agent into every new room (LiveKit's auto-dispatch serves only registered Agents
 *   workers, which an rtc-node participant is not); token kind `agent`, identity
 *   `agent-…`, as a worker joins.
 * - Agent B (the first version) parses the room name and never joins unless it ends in
 *   `_<mac 12 hex>_conversation`.
 * - Both wait for the first standard participant, then go `listening`.
 * - State: `agent_state_changed` with the source's 350 ms debounce (a change within 350 ms
 *   of the last one sent is dropped, not delayed), `speech_created` whenever the session
 *   goes to speaking, and LiveKit Agents' own `lk.agent.state` attribute (not debounced).
 * - Greeting: A on `start_greeting` or `agent_ready` after 2 s; B on `agent_ready` only.
 * - Interrupt on `abort_playback` only. `end_prompt`: A logs it, B speaks a goodbye.
 * - B's tools (`tools`, fake-agent-tools.ts): `function_call` on topic `mcp_function_call`,
 *   request id `req_<ms>`; waits 10 s for `mcp` with that request id (else the oldest
 *   pending call). B's emotions: `llm` on topic `emotion`. A's transcripts:
 *   `user_input_transcribed` and, as the framework does, an `lk.transcription` text stream
 *   (`texts`, fake-agent-texts.ts: the streams it writes).
 * - Voice: a 24 kHz mono microphone track named `roomio_audio`, a 300 Hz tone as speech.
 * - The network between it and the gateway: `holdData()` holds its data messages back until
 *   `releaseData()`, as a reliable data channel recovering a lost packet does, while its
 *   attribute (over signalling) and its voice go on: each path keeps its own order, not the
 *   other's. A hold the test ends, not a delay: a delay races the test's own steps.
 */
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  ParticipantKind,
  type RemoteParticipant,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from "@livekit/rtc-node";
import { AccessToken } from "livekit-server-sdk";
import type { LiveKitProcess } from "../../../tools/sim/livekit-process.ts";
import { rms } from "../../../tools/sim/speech-signal.ts";
import { FakeAgentTexts } from "./fake-agent-texts.ts";
import { FakeToolCalls } from "./fake-agent-tools.ts";

export type AgentVersion = "A" | "B";
type SessionState = "initializing" | "listening" | "thinking" | "speaking";
export type JsonMessage = Record<string, unknown>;

const RATE = 24000;
const FRAME = RATE / 100; // 10 ms
const STATE_DEBOUNCE_MS = 350;
const GREETING_DELAY_MS: Record<AgentVersion, number> = { A: 2000, B: 0 };

export interface FakeAgentOptions {
  readonly version: AgentVersion;
  /** How long its greeting lasts (ms of tone). */
  readonly greetingMs?: number;
}

export class FakeAgent {
  readonly version: AgentVersion;
  readonly roomName: string;
  readonly identity: string;
  readonly room = new Room();
  /** Its `lk.transcription` text streams. */
  readonly texts = new FakeAgentTexts(this.room);
  /** Agent B's tool calls. */
  readonly tools = new FakeToolCalls((m, topic) => this.#publish(m, topic));
  /** Every data message the gateway sent, in order. */
  readonly received: JsonMessage[] = [];
  greetings = 0;
  interrupts = 0;
  goodbyes = 0;
  /** Loudest RMS heard from the device's track. */
  deviceEnergy = 0;
  /** Data messages held back (holdData), in order; undefined: sent at once. */
  #heldData: { readonly message: JsonMessage; readonly send: () => Promise<void> }[] | undefined;
  readonly #greetingMs: number;
  readonly #source = new AudioSource(RATE, 1, 100);
  /** The track published from #source: closed with it at leave, or its native source lives on. */
  #track: LocalAudioTrack | undefined;
  #state: SessionState = "initializing";
  #sentState = "initializing";
  #sentAt = 0;
  #speech: { cancelled: boolean } | undefined;
  /** The speech playing now and those queued behind it (speak()). */
  #speechQueue: Promise<void> = Promise.resolve();
  readonly #listeners: ((m: JsonMessage) => void)[] = [];
  #gone = false;
  #leave: () => void = () => {};
  readonly #left = new Promise<void>((resolve) => {
    this.#leave = resolve;
  });

  private constructor(roomName: string, options: FakeAgentOptions) {
    this.version = options.version;
    this.roomName = roomName;
    this.identity = `agent-${options.version}-${Math.random().toString(36).slice(2, 8)}`;
    this.#greetingMs = options.greetingMs ?? 800;
  }

  /** The agent a worker would start for `roomName` (B: undefined unless `…_<mac>_conversation`). */
  static for(roomName: string, options: FakeAgentOptions): FakeAgent | undefined {
    if (options.version === "B" && !agentBAccepts(roomName)) return undefined;
    return new FakeAgent(roomName, options);
  }

  /** Joins like the real agent (B refuses rooms that are not `…_<mac>_conversation`). */
  static async join(
    lk: LiveKitProcess,
    roomName: string,
    options: FakeAgentOptions,
  ): Promise<FakeAgent | undefined> {
    const agent = FakeAgent.for(roomName, options);
    await agent?.connect(lk);
    return agent;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Resolves with the first gateway message matching `predicate` (past or future). */
  waitFor(predicate: (m: JsonMessage) => boolean, timeoutMs = 10_000): Promise<JsonMessage> {
    const seen = this.received.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.splice(this.#listeners.indexOf(on), 1);
        reject(new Error(`${this.identity}: no matching gateway message within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (m: JsonMessage) => {
        if (!predicate(m)) return;
        clearTimeout(timer);
        this.#listeners.splice(this.#listeners.indexOf(on), 1);
        resolve(m);
      };
      this.#listeners.push(on);
    });
  }

  /**
   * One reply: thinking, then speaking (tone for `ms`), then listening. Speeches play one
   * at a time, as the framework's speech queue plays them: one asked for while another is
   * still ending starts when that one has ended. (Run side by side, the earlier one's late
   * `listening` landed in the middle of the next reply, and their frames shared one audio
   * source, which then refused one: "failed to capture frame". Seen on a loaded machine,
   * where the gateway's `tts stop` can reach the test before the agent's speak() returns.)
   */
  speak(ms: number): Promise<"done" | "interrupted"> {
    const played = this.#speechQueue.then(() => this.#play(ms));
    this.#speechQueue = played.then(
      () => {},
      () => {},
    );
    return played;
  }

  async #play(ms: number): Promise<"done" | "interrupted"> {
    const speech = { cancelled: false };
    this.#speech = speech;
    await this.#setState("thinking");
    await new Promise((r) => setTimeout(r, 150));
    if (speech.cancelled) return "interrupted";
    await this.#setState("speaking");
    for (let t = 0; t < ms && !speech.cancelled; t += 10) {
      const data = new Int16Array(FRAME);
      for (let i = 0; i < FRAME; i++)
        data[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * (t * 24 + i)) / RATE));
      // Rejects once the agent has left: the speech ends there.
      const ok = await this.#source.captureFrame(new AudioFrame(data, RATE, 1, FRAME)).then(
        () => true,
        () => false,
      );
      if (!ok) return "interrupted";
    }
    if (speech.cancelled) return "interrupted";
    await this.#source.waitForPlayout().catch(() => {});
    if (this.#speech === speech) this.#speech = undefined;
    await this.#setState("listening");
    return "done";
  }

  /**
   * Agent A: the user's final transcript, as its message and as the framework's stream
   * (`streamOnly`: the stream alone, as any LiveKit Agents agent sends it).
   */
  async transcribed(text: string, deviceIdentity: string, streamOnly = false): Promise<void> {
    if (!streamOnly)
      await this.#publish({ type: "user_input_transcribed", data: { transcript: text, is_final: true } });
    await this.texts.transcribed(text, deviceIdentity);
  }

  /** Agent B: the face, on topic `emotion`. */
  emotion(emotion: string, emoji: string): Promise<void> {
    return this.#publish({ type: "llm", text: emoji, emotion }, "emotion");
  }

  async leave(): Promise<void> {
    this.#gone = true;
    this.#leave();
    if (this.#speech) this.#speech.cancelled = true;
    this.room.removeAllListeners();
    // As the rtc-node transport's leave: the room, then the track, then the source (a source
    // whose track stays open keeps its native capture thread until the process's exit).
    await this.room.disconnect().catch(() => {});
    await this.#track?.close().catch(() => {});
    await this.#source.close().catch(() => {});
  }

  async connect(lk: LiveKitProcess): Promise<void> {
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity: this.identity });
    at.kind = "agent";
    at.addGrant({
      room: this.roomName,
      roomJoin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
      canUpdateOwnMetadata: true,
    });
    this.room.on(RoomEvent.DataReceived, (payload) => this.#onData(payload));
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => this.#hear(track));
    const firstUser = new Promise<void>((resolve) => {
      const check = (p: RemoteParticipant) => {
        if (p.kind === ParticipantKind.STANDARD) resolve();
      };
      this.room.on(RoomEvent.ParticipantConnected, check);
      for (const p of this.room.remoteParticipants.values()) check(p);
    });
    await this.room.connect(lk.url, await at.toJwt(), { autoSubscribe: true, dynacast: false });
    if (this.#gone) {
      await this.room.disconnect().catch(() => {});
      return;
    }
    const opts = new TrackPublishOptions();
    opts.source = TrackSource.SOURCE_MICROPHONE;
    this.#track = LocalAudioTrack.createAudioTrack("roomio_audio", this.#source);
    await this.room.localParticipant?.publishTrack(this.#track, opts);
    const present = [...this.room.remoteParticipants.values()].some(
      (p) => p.kind === ParticipantKind.STANDARD,
    );
    if (!present) await Promise.race([firstUser, this.#left]);
    if (!this.#gone) await this.#setState("listening");
  }

  #hear(track: RemoteTrack): void {
    if (track.kind !== TrackKind.KIND_AUDIO) return;
    void (async () => {
      for await (const frame of new AudioStream(track, { sampleRate: 16000, numChannels: 1 })) {
        const level = rms(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength));
        if (level > this.deviceEnergy) this.deviceEnergy = level;
      }
    })().catch(() => {});
  }

  #onData(payload: Uint8Array): void {
    let m: JsonMessage;
    try {
      m = JSON.parse(Buffer.from(payload).toString("utf8")) as JsonMessage;
    } catch {
      return;
    }
    this.received.push(m);
    for (const on of [...this.#listeners]) on(m);
    switch (m.type) {
      case "start_greeting":
        if (this.version === "A") this.#greet();
        return;
      case "agent_ready":
        this.#greet();
        return;
      case "abort_playback":
        this.#interrupt();
        return;
      case "end_prompt":
        if (this.version === "B") {
          this.goodbyes++;
          void this.speak(600);
        }
        return;
      case "mcp":
        if (this.version === "B") this.tools.answer(m);
        return;
      default:
        return;
    }
  }

  #greet(): void {
    void (async () => {
      await new Promise((r) => setTimeout(r, GREETING_DELAY_MS[this.version]));
      this.greetings++;
      await this.speak(this.#greetingMs);
    })();
  }

  /** `session.interrupt()`: the speech stops now and the session listens again. */
  #interrupt(): void {
    this.interrupts++;
    if (this.#speech) this.#speech.cancelled = true;
    this.#speech = undefined;
    this.#source.clearQueue();
    void this.#setState("listening");
  }

  /** A session state change, reported as the agent's source does. */
  async #setState(state: SessionState): Promise<void> {
    const old = this.#state;
    if (old === state) return;
    this.#state = state;
    await this.room.localParticipant?.setAttributes({ "lk.agent.state": state }).catch(() => {});
    if (state === "speaking") await this.#publish({ type: "speech_created", data: { text: "" } });
    const now = Date.now();
    if (now - this.#sentAt < STATE_DEBOUNCE_MS || state === this.#sentState) return;
    const previous = this.#sentState;
    this.#sentState = state;
    this.#sentAt = now;
    await this.#publish({ type: "agent_state_changed", data: { old_state: previous, new_state: state } });
  }

  async #publish(m: JsonMessage, topic?: string): Promise<void> {
    const lp = this.room.localParticipant;
    if (!lp) return;
    const data = new TextEncoder().encode(JSON.stringify(m));
    const send = () =>
      lp.publishData(data, topic ? { reliable: true, topic } : { reliable: true }).catch(() => {});
    // The agent does not wait for the network: a held channel delays, the agent goes on.
    if (this.#heldData) this.#heldData.push({ message: m, send });
    else await send();
  }

  /** From now on its data messages wait, in order, until releaseData(). */
  holdData(): void {
    this.#heldData ??= [];
  }

  /** Sends what was held, in order, and sends at once again; returns what it sent. */
  async releaseData(): Promise<JsonMessage[]> {
    const held = this.#heldData ?? [];
    this.#heldData = undefined;
    for (const { send } of held) await send();
    return held.map((h) => h.message);
  }
}

/** Agent B's room-name guard (its main.py): `…_<12 alnum>_<type>` with type `conversation`. */
export function agentBAccepts(roomName: string): boolean {
  const parts = roomName.split("_");
  if (parts.length < 3) return true; // B carries on without a MAC
  return parts[parts.length - 1] === "conversation";
}
