/**
 * A device session's LiveKit room, speaking the deployed agent's protocol
 * (docs/agent-data-channel.md). This file is the glue: room-link.ts opens and closes the
 * room, its transport moves bytes (room-transport.ts), the pure modules in agent-protocol/
 * decide what they mean, and the session's AgentSink reaches the device. Created after
 * the hello reply has gone out; everything here is asynchronous and never delays it.
 *
 * close() sends `cleanup_request`, leaves the room (every listener, reader and source
 * released), deletes the room and settles every pending MCP call.
 *
 * When the last agent leaves, its open turn ends at once and, unless an agent joins again
 * within AGENT_GONE_GRACE_MS (agents-present.ts), the session ends (`agent_ended`).
 */
import { type JsonObject, llmMessage, mcpMessage, sttMessage, ttsMessage } from "../../protocol/messages.ts";
import type { StartTimer } from "../../session/timer.ts";
import type { AgentBridge, AgentSessionInfo, AgentSink, DeviceEvent, UpstreamOpus } from "../agent-bridge.ts";
import { type AgentMessage, isAgentState, parseAgentMessage } from "./agent-protocol/agent-messages.ts";
import { type DeviceTextResult, DeviceTexts } from "./agent-protocol/device-texts.ts";
import {
  abortPlayback,
  cleanupRequest,
  encodeMessage,
  endPrompt,
  type GreetingTrigger,
  greetingMessages,
  mcpAnswer,
  type SessionRef,
} from "./agent-protocol/gateway-messages.ts";
import { Greeting } from "./agent-protocol/greeting.ts";
import { isAgentParticipant, isVoiced } from "./agent-protocol/signals.ts";
import { type TurnAction, Turns } from "./agent-protocol/turns.ts";
import { AgentsPresent } from "./agents-present.ts";
import { DeadlineTimer, startUnrefTimer } from "./deadline-timer.ts";
import { FarewellWait } from "./farewell-wait.ts";
import { McpCalls } from "./mcp-calls.ts";
import { RoomLink } from "./room-link.ts";
import type {
  RemoteParticipantInfo,
  RoomTransport,
  RoomTransportFactory,
  RoomTransportHandlers,
  TextStreamChunk,
} from "./room-transport.ts";
import { type LiveKitServices, participantIdentity } from "./services.ts";
import { ToolCalls } from "./tool-calls.ts";

export interface BridgeDeps {
  readonly services: LiveKitServices;
  readonly transports: RoomTransportFactory;
  readonly greeting: GreetingTrigger;
  /** After an abort, how long a signal still owed is late (turns.ts); its default there. */
  readonly lateSignalMs?: number;
  /** Injected for tests; Date.now by default. */
  readonly now?: () => number;
  /** Injected for tests (with `now`); Node's timers, unref'd, by default. */
  readonly startTimer?: StartTimer;
}

/** The agent's `lk.agent.state` attribute (LiveKit Agents 1.x). */
const STATE_ATTRIBUTE = "lk.agent.state";

/** The data messages that frame turns (turns.ts). */
const TURN_SIGNALS: ReadonlySet<AgentMessage["type"]> = new Set([
  "agent_state_changed",
  "speech_created",
  "music_playback_stopped",
]);

export class LiveKitBridge implements AgentBridge {
  /** Set once the transport exists, if it forwards Opus (the session checks per packet). */
  pushOpus?: (frame: UpstreamOpus) => void;
  readonly #info: AgentSessionInfo;
  readonly #sink: AgentSink;
  readonly #services: LiveKitServices;
  readonly #trigger: GreetingTrigger;
  readonly #now: () => number;
  readonly #startTimer: StartTimer;
  readonly #ref: SessionRef;
  readonly #self: string;
  readonly #room: RoomLink;
  readonly #mcp: McpCalls;
  readonly #turns: Turns;
  readonly #greeting: Greeting;
  readonly #texts: DeviceTexts;
  readonly #agents = new AgentsPresent();
  readonly #tools: ToolCalls;
  readonly #ready: Promise<void>;
  readonly #farewell = new FarewellWait();
  readonly #timer: DeadlineTimer;
  #udpKnown = false;
  #closed = false;

  constructor(info: AgentSessionInfo, sink: AgentSink, deps: BridgeDeps) {
    this.#info = info;
    this.#sink = sink;
    this.#turns = new Turns(deps.lateSignalMs);
    this.#services = deps.services;
    this.#trigger = deps.greeting;
    this.#room = new RoomLink(info, deps.services, deps.transports);
    this.#now = deps.now ?? Date.now;
    this.#startTimer = deps.startTimer ?? startUnrefTimer;
    this.#timer = new DeadlineTimer(this.#startTimer, this.#now, () => this.#onTimer());
    this.#mcp = new McpCalls(16, deps.services.options.mcpTimeoutMs);
    this.#tools = new ToolCalls(
      this.#mcp,
      {
        toDevice: (payload) => this.#sink.sendToDevice(mcpMessage(this.#info.sessionId, payload)),
        // #post, not #send: the error answers to calls pending at close go out during close().
        answer: (payload, requestId) => this.#post(mcpAnswer(this.#ref, payload, requestId, this.#now())),
        drop: (reason) => this.#services.events.drop(reason),
      },
      this.#startTimer,
    );
    this.#self = participantIdentity(info.mac);
    this.#texts = new DeviceTexts(this.#self);
    this.#greeting = new Greeting(this.#now());
    const uuid = info.clientId.split("@@@")[2];
    this.#ref = { sessionId: info.sessionId, mac: info.mac, uuid };
    this.#ready = this.#room
      .open(
        this.#handlers(),
        (transport) => this.#usePushOpus(transport),
        () => this.#checkGreeting(),
      )
      .catch((err: Error) => {
        if (this.#closed) return;
        deps.services.events.failed(this.#room.name, err);
        sink.endSession("agent_failed");
      });
  }

  get roomName(): string {
    return this.#room.name;
  }

  /** Resolves when the room is joined and the agent dispatched (or failed). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  pushAudio(pcm: Buffer, sampleRate: number): void {
    if (this.#closed) return;
    this.#deviceHeard();
    const transport = this.#room.transport;
    if (!transport) return this.#services.events.drop("agent_not_connected");
    transport.pushPcm(pcm, sampleRate);
  }

  onDeviceEvent(event: DeviceEvent): void {
    if (this.#closed) return;
    switch (event.kind) {
      case "abort": {
        // The session has already stopped the device's playback (tts stop); from here no
        // agent audio reaches it until the agent starts a new turn.
        const now = this.#now();
        const wasSpeaking = this.#turns.speaking;
        this.#turns.abort(now);
        // An abort ends the turn without a turn action (the session sent tts stop itself):
        // a goodbye cut short is over, so the farewell need not wait for its cap.
        if (wasSpeaking) this.#farewell.turnEnded(now);
        this.#arm();
        this.#send(abortPlayback(this.#ref, now));
        return;
      }
      case "mcp":
        if (!this.#mcp.answer(event.payload)) this.#services.events.drop("device_mcp_unclaimed");
        return;
      default:
        return; // listen and wake word: the agent runs its own VAD (BUNNY forwards neither)
    }
  }

  /**
   * The session is about to close for inactivity: `end_prompt` lets the agent say goodbye.
   * Resolves when it has (farewell.ts), at once without a connected agent. Never rejects.
   */
  farewell(): Promise<void> {
    if (this.#closed || !this.#room.connected || this.#agents.count === 0) return Promise.resolve();
    const { done, started } = this.#farewell.begin(this.#now());
    if (started) {
      this.#send(endPrompt(this.#ref, this.#now()));
      this.#arm();
    }
    return done;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.cancel();
    // Every tool call still pending is answered with an error, so the agent stops waiting
    // for it; the answers are sent as they settle, and close waits for all of them before
    // it sends cleanup_request.
    const answered = this.#tools.close("session closed");
    this.#farewell.settle();
    this.#texts.clear();
    await this.#room.close(Promise.all([this.#ready, answered]), () =>
      encodeMessage(cleanupRequest(this.#ref, this.#now())),
    );
  }

  /** The room's events; ignored after close (a transport may still be delivering). */
  #handlers(): RoomTransportHandlers {
    return {
      participantJoined: (p) => !this.#closed && this.#onJoined(p),
      participantLeft: (identity) => !this.#closed && this.#onLeft(identity),
      attributesChanged: (identity, attributes) => !this.#closed && this.#onAttributes(identity, attributes),
      data: (payload) => !this.#closed && this.#onData(payload),
      text: (chunk) => !this.#closed && this.#onText(chunk),
      agentAudio: (pcm) => !this.#closed && this.#onAgentAudio(pcm),
      disconnected: (reason) => {
        if (this.#closed) return;
        // The deployed agent deletes the room once its job has ended, after leaving it
        // (Agent B's cleanup): the agent's end, not a failure of the room.
        if (this.#agents.gone) return this.#sink.endSession("agent_ended");
        this.#services.events.failed(this.#room.name, new Error(reason));
        this.#sink.endSession("agent_failed");
      },
    };
  }

  /** A transport that forwards the device's Opus as it came (the session checks per packet). */
  #usePushOpus(transport: RoomTransport): void {
    if (!transport.pushOpus) return;
    const push = transport.pushOpus.bind(transport);
    this.pushOpus = (frame) => {
      if (this.#closed) return;
      this.#deviceHeard();
      push(frame);
    };
  }

  #deviceHeard(): void {
    if (this.#udpKnown) return;
    this.#udpKnown = true;
    this.#greeting.udpKnown();
    this.#checkGreeting();
  }

  #onJoined(p: RemoteParticipantInfo): void {
    if (!isAgentParticipant(p)) return;
    this.#agents.joined(p.identity);
    this.#texts.agentJoined(p.identity);
    this.#greeting.agentJoined(p.identity);
    this.#checkGreeting();
    this.#onAttributes(p.identity, p.attributes);
  }

  #onLeft(identity: string): void {
    // Transcriptions it alone could have ended: released after a grace (#onTimer), in
    // which an end that was sent before the leave but comes after it is still shown.
    this.#texts.participantLeft(identity, this.#now());
    this.#arm();
    this.#greeting.agentLeft(identity);
    const now = this.#now();
    if (!this.#agents.left(identity, now)) return;
    this.#apply(this.#turns.agentLeft(now));
    // No agent is left to say goodbye: the inactivity close need not wait for one.
    this.#farewell.settle();
    this.#arm();
  }

  #onAttributes(identity: string, attributes: Readonly<Record<string, string>>): void {
    if (!this.#agents.has(identity)) return;
    const state = attributes[STATE_ATTRIBUTE];
    if (state === undefined) return;
    if (!isAgentState(state)) return this.#services.events.drop("agent_attr_bad_state");
    this.#apply(this.#turns.agentState("attribute", state, this.#now()));
  }

  #onData(payload: Uint8Array): void {
    const m = parseAgentMessage(payload);
    if ("error" in m) return this.#services.events.drop(`agent_data_${m.error}`);
    // No agent in the room since the last one left: a turn signal now is that agent's, sent
    // before it left and overtaken by its leave (signalling and the data channel are not
    // ordered). Taken, it opened a turn with no agent to end it, and its `speaking`
    // outlived the leave that had forgotten the agent's state.
    if (TURN_SIGNALS.has(m.type) && this.#agents.gone)
      return this.#services.events.drop("agent_signal_not_in_room");
    this.#onMessage(m);
  }

  #onMessage(m: AgentMessage): void {
    const now = this.#now();
    const sid = this.#info.sessionId;
    switch (m.type) {
      case "agent_state_changed":
        return this.#apply(this.#turns.agentState("message", m.newState, now));
      case "speech_created":
        return this.#apply(this.#turns.speechCreated(m.text, now));
      case "music_playback_stopped":
        return this.#apply(this.#turns.musicStopped(now));
      case "user_input_transcribed":
        if (m.isFinal) this.#show(this.#texts.stt(m.transcript, now));
        return;
      case "llm":
        return this.#sink.sendToDevice(llmMessage(sid, m.emotion, m.text));
      case "function_call":
        return this.#tools.call(m.name, m.arguments, m.requestId);
    }
  }

  #onText(chunk: TextStreamChunk): void {
    this.#show(this.#texts.chunk(chunk, this.#now()));
    // A stream whose senders had already left is released on their grace (transcription.ts).
    this.#arm();
  }

  #show(r: DeviceTextResult): void {
    if (r.released)
      this.#services.events.drop(r.released === "stale" ? "agent_text_stale" : "agent_text_sender_left");
    if (r.drop) return this.#services.events.drop(r.drop);
    if (!r.show) return;
    const sid = this.#info.sessionId;
    const { kind, text } = r.show;
    this.#sink.sendToDevice(kind === "stt" ? sttMessage(sid, text) : ttsMessage(sid, "sentence_start", text));
  }

  #onAgentAudio(pcm: Buffer): void {
    const voiced = isVoiced(pcm);
    const { forward, actions } = this.#turns.audio(voiced, this.#now());
    this.#apply(actions);
    if (forward) return this.#sink.audio(pcm);
    // Silence outside a turn loses nothing; voice held back is counted: behind a closed
    // gate (after an abort, or the agent's tail after it left), or the frame whose arrival
    // ended the turn (END_GRACE_MS after the end signal, the agent still voiced).
    if (voiced) this.#services.events.drop(actions.length > 0 ? "agent_audio_turn_end" : "agent_audio_gated");
  }

  #apply(actions: readonly TurnAction[]): void {
    const now = this.#now();
    for (const a of actions) {
      if (a.kind === "start") {
        this.#sink.speechStart(a.text);
        this.#farewell.turnStarted(now);
      } else if (a.kind === "end") {
        this.#sink.speechEnd();
        if (a.by === "silence") this.#services.events.drop("turn_ended_by_silence");
        this.#farewell.turnEnded(now);
      } else {
        // The aborted turn's own signal, late on its path: it must not replay that turn.
        this.#services.events.drop("agent_signal_late");
      }
    }
    this.#arm();
  }

  #checkGreeting(): void {
    if (!this.#room.connected) return;
    for (const _agent of this.#greeting.due(this.#now())) {
      for (const m of greetingMessages(this.#trigger, this.#ref, this.#now())) this.#send(m);
      this.#services.events.drop(`greeting_${this.#trigger}`);
    }
    this.#arm();
  }

  /**
   * One timer for every deadline (turn end, greeting wait, farewell, agent gone, the
   * release of a departed sender's transcriptions).
   */
  #arm(): void {
    if (this.#closed) return;
    this.#timer.arm([
      this.#turns.nextDeadline(),
      // Not before the join (joined() checks it): a past deadline re-armed 0 ms timers till then.
      this.#room.connected ? this.#greeting.nextDeadline() : undefined,
      this.#farewell.nextDeadline(),
      this.#agents.nextDeadline(),
      this.#texts.nextDeadline(),
    ]);
  }

  #onTimer(): void {
    if (this.#closed) return;
    const now = this.#now();
    // Before the session can end below: released, they are counted.
    const released = this.#texts.tick(now);
    for (let i = 0; i < released; i++) this.#services.events.drop("agent_text_sender_left");
    if (this.#agents.endDue(now)) return this.#sink.endSession("agent_ended");
    this.#apply(this.#turns.tick(now));
    this.#checkGreeting();
    this.#farewell.tick(now);
    this.#arm();
  }

  #send(m: JsonObject): void {
    if (!this.#closed) this.#post(m);
  }

  /** Sends even while closing, until the room is left (cleanup_request is sent last). */
  #post(m: JsonObject): void {
    this.#room.send(encodeMessage(m));
  }
}
