/**
 * A device session's LiveKit room: the device's voice published as a 16 kHz mono track,
 * the agent's voice read back at 24 kHz mono, control over the data channel. Created
 * after the hello reply has gone out; everything here is asynchronous and never delays it.
 *
 * close() removes every listener, cancels the audio reader, closes the source,
 * disconnects, deletes the room and settles every pending MCP call.
 */
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from "@livekit/rtc-node";
import { type JsonObject, llmMessage, mcpMessage, sttMessage, ttsMessage } from "../../protocol/messages.ts";
import type { AgentBridge, AgentSessionInfo, AgentSink, DeviceEvent } from "../agent-bridge.ts";
import { encodeGatewayMessage, type GatewayMessage, parseAgentMessage } from "./data-messages.ts";
import { McpCalls } from "./mcp-calls.ts";
import { roomName } from "./room-names.ts";
import type { LiveKitServices } from "./services.ts";

const UP_RATE = 16000;
const DOWN_RATE = 24000;
/** Agent frames with every |sample| under this are silence (not worth a packet). */
const SILENCE_PEAK = 10;
/** This much silence after agent speech ends the turn (`tts stop`). */
const END_OF_SPEECH_MS = 400;
/** Device audio waiting in the source beyond this is dropped, not queued without end. */
const MAX_SOURCE_BACKLOG_MS = 500;

export class LiveKitBridge implements AgentBridge {
  readonly #info: AgentSessionInfo;
  readonly #sink: AgentSink;
  readonly #services: LiveKitServices;
  readonly #room = new Room();
  readonly #source = new AudioSource(UP_RATE, 1, 1000);
  readonly #mcp: McpCalls;
  readonly #name: string;
  #connected = false;
  #closed = false;
  #reader: ReadableStreamDefaultReader<AudioFrame> | undefined;
  #speaking = false;
  #silentMs = 0;
  readonly #ready: Promise<void>;

  constructor(info: AgentSessionInfo, sink: AgentSink, services: LiveKitServices) {
    this.#info = info;
    this.#sink = sink;
    this.#services = services;
    this.#mcp = new McpCalls(16, services.options.mcpTimeoutMs);
    this.#name = roomName(info.mac, info.sessionId);
    this.#ready = this.#open().catch((err: Error) => {
      if (this.#closed) return;
      services.events.failed(this.#name, err);
      sink.endSession("agent_failed");
    });
  }

  get roomName(): string {
    return this.#name;
  }

  /** Resolves when the room is joined and the agent dispatched (or failed). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  pushAudio(pcm: Buffer, sampleRate: number): void {
    if (this.#closed) return;
    if (!this.#connected) return this.#services.events.drop("agent_not_connected");
    if (this.#source.queuedDuration > MAX_SOURCE_BACKLOG_MS)
      return this.#services.events.drop("agent_backlog");
    const samples = new Int16Array(pcm.length >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
    this.#source.captureFrame(new AudioFrame(samples, sampleRate, 1, samples.length)).catch(() => {
      if (!this.#closed) this.#services.events.drop("agent_capture_failed");
    });
  }

  onDeviceEvent(event: DeviceEvent): void {
    if (this.#closed) return;
    const sid = this.#info.sessionId;
    switch (event.kind) {
      case "abort":
        this.#speaking = false;
        return this.#send({ type: "abort", session_id: sid, reason: event.reason ?? null });
      case "device_goodbye":
        return this.#send({ type: "device_goodbye", session_id: sid });
      case "wake_word":
        return this.#send({ type: "wake_word", session_id: sid, text: event.text });
      case "mcp":
        if (!this.#mcp.answer(event.payload))
          this.#send({ type: "device_mcp", session_id: sid, payload: event.payload });
        return;
      default:
        return;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#mcp.rejectAll("session closed");
    await this.#ready;
    if (this.#connected) {
      await this.#publish({ type: "end_of_session", session_id: this.#info.sessionId }).catch(() => {});
    }
    this.#room.removeAllListeners();
    await this.#reader?.cancel().catch(() => {});
    await this.#source.close().catch(() => {});
    await this.#room.disconnect().catch(() => {});
    this.#connected = false;
    await this.#services.rooms.deleteRoom(this.#name).catch(() => {});
    this.#services.events.roomClosed(this.#name);
  }

  async #open(): Promise<void> {
    const { rooms, options } = this.#services;
    await rooms.createRoom({
      name: this.#name,
      emptyTimeout: options.emptyTimeoutS,
      maxParticipants: options.maxParticipants,
    });
    if (this.#closed) return;
    const token = await this.#services.token(this.#name, this.#info);
    this.#room.on(RoomEvent.TrackSubscribed, (track) => this.#onTrack(track));
    this.#room.on(RoomEvent.DataReceived, (payload) => this.#onData(payload));
    // Data is not stored for late joiners: greet each participant (the agent) as it arrives.
    this.#room.on(RoomEvent.ParticipantConnected, () => this.#send(this.#sessionStart()));
    await this.#room.connect(options.url, token, { autoSubscribe: true, dynacast: false });
    if (this.#closed) {
      await this.#room.disconnect().catch(() => {});
      return;
    }
    const track = LocalAudioTrack.createAudioTrack("microphone", this.#source);
    const publish = new TrackPublishOptions();
    publish.source = TrackSource.SOURCE_MICROPHONE;
    await this.#room.localParticipant?.publishTrack(track, publish);
    this.#connected = true;
    this.#services.events.roomOpened(this.#name);
    await this.#publish({
      type: "session_start",
      session_id: this.#info.sessionId,
      device_mac: this.#info.mac,
    });
    await this.#services.dispatch(this.#name, this.#info);
  }

  #onTrack(track: RemoteTrack): void {
    if (track.kind !== TrackKind.KIND_AUDIO || this.#reader || this.#closed) return;
    const stream = new AudioStream(track, { sampleRate: DOWN_RATE, numChannels: 1 });
    const reader = stream.getReader();
    this.#reader = reader;
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done || !value || this.#closed) return;
        this.#onAgentFrame(value);
      }
    })();
  }

  #onAgentFrame(frame: AudioFrame): void {
    let peak = 0;
    for (const s of frame.data) peak = Math.max(peak, s < 0 ? -s : s);
    const ms = (frame.samplesPerChannel * 1000) / frame.sampleRate;
    if (peak < SILENCE_PEAK) {
      if (!this.#speaking) return;
      this.#silentMs += ms;
      if (this.#silentMs >= END_OF_SPEECH_MS) return this.#endSpeech();
    } else {
      this.#silentMs = 0;
      if (!this.#speaking) {
        this.#speaking = true;
        this.#sink.speechStart();
      }
    }
    this.#sink.audio(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength));
  }

  #endSpeech(): void {
    if (!this.#speaking) return;
    this.#speaking = false;
    this.#silentMs = 0;
    this.#sink.speechEnd();
  }

  #onData(payload: Uint8Array): void {
    const m = parseAgentMessage(payload);
    if ("error" in m) return this.#services.events.drop(`agent_data_${m.error}`);
    const sid = this.#info.sessionId;
    switch (m.type) {
      case "agent_state":
        if (m.state !== "speaking") this.#endSpeech();
        return;
      case "transcript":
        if (m.final) this.#sink.sendToDevice(sttMessage(sid, m.text));
        return;
      case "reply_text":
        return this.#sink.sendToDevice(ttsMessage(sid, "sentence_start", m.text));
      case "emotion":
        return this.#sink.sendToDevice(llmMessage(sid, m.emotion, m.text));
      case "mcp_call":
        return void this.#callTool(m.requestId, m.name, m.arguments);
      case "set_volume":
        return void this.#callTool(m.requestId, "self.audio_speaker.set_volume", { volume: m.volume });
      case "end_session":
        return this.#sink.endSession("agent_ended");
    }
  }

  async #callTool(requestId: string, name: string, args: JsonObject): Promise<void> {
    const outcome = await this.#mcp.call(name, args, (payload) =>
      this.#sink.sendToDevice(mcpMessage(this.#info.sessionId, payload)),
    );
    if (!this.#closed) this.#send({ type: "mcp_result", request_id: requestId, ...outcome });
  }

  #sessionStart(): GatewayMessage {
    return { type: "session_start", session_id: this.#info.sessionId, device_mac: this.#info.mac };
  }

  #send(m: GatewayMessage): void {
    if (!this.#connected) return;
    this.#publish(m).catch(() => this.#services.events.drop("agent_data_send_failed"));
  }

  #publish(m: GatewayMessage): Promise<void> {
    const lp = this.#room.localParticipant;
    if (!lp) return Promise.resolve();
    return lp.publishData(encodeGatewayMessage(m), { reliable: true, topic: "gateway" });
  }
}
