/**
 * The `rtc-node` room transport: `@livekit/rtc-node` in the gateway process. The device's
 * voice is published as decoded PCM (a 16 kHz mono microphone track); the agent's voice is
 * read back at 24 kHz mono; data packets, attribute changes and `lk.transcription` text
 * streams are passed up as they come. It moves bytes only (room-transport.ts).
 */

import {
  AudioFrame,
  AudioSource,
  AudioStream,
  ParticipantKind as LkKind,
  LocalAudioTrack,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from "@livekit/rtc-node";
import { DOWN_RATE } from "../../protocol/audio-format.ts";
import type {
  ParticipantKind,
  RemoteParticipantInfo,
  RoomJoin,
  RoomTransport,
  RoomTransportFactory,
  RoomTransportHandlers,
} from "./room-transport.ts";

const UP_RATE = 16000;
/** Device audio waiting in the source beyond this is dropped, not queued without end. */
const MAX_SOURCE_BACKLOG_MS = 500;
/** The text-stream topics passed up (LiveKit Agents' transcriptions). */
const TEXT_TOPICS = ["lk.transcription"];

export interface RtcNodeTransportEvents {
  drop(reason: string): void;
}

export function rtcNodeTransportFactory(events: RtcNodeTransportEvents): RoomTransportFactory {
  return (join, handlers) => new RtcNodeTransport(join, handlers, events);
}

function kindOf(p: Participant): ParticipantKind {
  switch (p.kind) {
    case LkKind.AGENT:
      return "agent";
    case LkKind.INGRESS:
      return "ingress";
    case LkKind.EGRESS:
      return "egress";
    case LkKind.SIP:
      return "sip";
    case LkKind.STANDARD:
      return "standard";
    default:
      return "other";
  }
}

function info(p: RemoteParticipant): RemoteParticipantInfo {
  return { identity: p.identity, kind: kindOf(p), attributes: { ...p.attributes } };
}

class RtcNodeTransport implements RoomTransport {
  readonly #join: RoomJoin;
  readonly #h: RoomTransportHandlers;
  readonly #events: RtcNodeTransportEvents;
  readonly #room = new Room();
  readonly #source = new AudioSource(UP_RATE, 1, 1000);
  /** The device's voice published from #source; closed at leave (see there). */
  #track: LocalAudioTrack | undefined;
  /** The remote audio tracks subscribed, oldest first: the newest is heard (#hearNewest). */
  #tracks: RemoteTrack[] = [];
  #heard:
    | { readonly track: RemoteTrack; readonly reader: ReadableStreamDefaultReader<AudioFrame> }
    | undefined;
  #connected = false;
  #left = false;

  constructor(join: RoomJoin, handlers: RoomTransportHandlers, events: RtcNodeTransportEvents) {
    this.#join = join;
    this.#h = handlers;
    this.#events = events;
  }

  async join(): Promise<void> {
    const room = this.#room;
    room.on(RoomEvent.ParticipantConnected, (p) => this.#h.participantJoined(info(p)));
    room.on(RoomEvent.ParticipantDisconnected, (p) => this.#h.participantLeft(p.identity));
    room.on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => {
      if (p.identity !== room.localParticipant?.identity)
        this.#h.attributesChanged(p.identity, { ...p.attributes });
    });
    room.on(RoomEvent.DataReceived, (payload, p, _kind, topic) => this.#h.data(payload, topic, p?.identity));
    room.on(RoomEvent.TrackSubscribed, (track) => this.#onTrack(track));
    room.on(RoomEvent.TrackUnsubscribed, (track) => this.#onTrackGone(track));
    room.on(RoomEvent.Disconnected, (reason) => {
      if (!this.#left) this.#h.disconnected(`room disconnected (${String(reason)})`);
    });
    for (const topic of TEXT_TOPICS) {
      room.registerTextStreamHandler(topic, (reader, from) => {
        const header = reader.info;
        const base = {
          streamId: header.streamId,
          topic: header.topic,
          from: from.identity,
          attributes: { ...(header.attributes ?? {}) },
        };
        void (async () => {
          try {
            for await (const text of reader) {
              if (this.#left) return;
              this.#h.text({ ...base, text, done: false });
            }
            if (!this.#left) this.#h.text({ ...base, text: "", done: true });
          } catch {
            this.#events.drop("agent_text_stream_failed");
            // Closes the stream above too: without this its id stayed open there, and
            // MAX_OPEN_STREAMS failures refused every later transcription of the session.
            if (!this.#left) this.#h.text({ ...base, text: "", done: true, aborted: true });
            await reader.close().catch(() => {});
          }
        })();
      });
    }
    await room.connect(this.#join.url, this.#join.token, { autoSubscribe: true, dynacast: false });
    if (this.#left) {
      // leave() came while connecting (the bridge's join timeout): its disconnect returned
      // at once, rtc-node's Room not being connected yet, so this connection is ended here
      // or it would stay in the room for good.
      await room.disconnect().catch(() => {});
      return;
    }
    const track = LocalAudioTrack.createAudioTrack("microphone", this.#source);
    this.#track = track;
    const publish = new TrackPublishOptions();
    publish.source = TrackSource.SOURCE_MICROPHONE;
    await room.localParticipant?.publishTrack(track, publish);
    if (this.#left) return; // leave() came while publishing: it disconnected the room itself
    this.#connected = true;
    // Participants already in the room (the agent may have joined first).
    for (const p of room.remoteParticipants.values()) this.#h.participantJoined(info(p));
  }

  pushPcm(pcm: Buffer, sampleRate: number): void {
    if (!this.#connected || this.#left) return this.#events.drop("agent_not_connected");
    if (this.#source.queuedDuration > MAX_SOURCE_BACKLOG_MS) return this.#events.drop("agent_backlog");
    const samples = new Int16Array(pcm.length >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
    this.#source.captureFrame(new AudioFrame(samples, sampleRate, 1, samples.length)).catch(() => {
      if (!this.#left) this.#events.drop("agent_capture_failed");
    });
  }

  async sendData(payload: Uint8Array, topic?: string): Promise<void> {
    const lp = this.#room.localParticipant;
    if (!this.#connected || this.#left || !lp) return;
    await lp.publishData(payload, topic === undefined ? { reliable: true } : { reliable: true, topic });
  }

  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#connected = false;
    this.#room.removeAllListeners();
    for (const topic of TEXT_TOPICS) this.#room.unregisterTextStreamHandler(topic);
    this.#tracks = [];
    const heard = this.#heard;
    this.#heard = undefined;
    await heard?.reader.cancel().catch(() => {});
    await this.#room.disconnect().catch(() => {});
    // The native audio source (and the capture thread it runs) is held by the source's
    // handle and by the track's: closing only the source left both for the garbage
    // collector, or for the finalizers of the process's exit, which then freed them under
    // rtc-node's running threads (a heap corruption at a test process's exit).
    await this.#track?.close().catch(() => {});
    this.#track = undefined;
    await this.#source.close().catch(() => {});
  }

  /**
   * Only the newest audio track still subscribed is heard: LiveKit Agents publishes a new
   * track on each reconnect of its room and may keep the old one, and the new one's
   * subscription can come before the old one's end. Reading the first track only lost the
   * agent's voice for the rest of the session once that one ended or fell silent. A track
   * not heard is not read at all (no AudioStream: nothing of it is buffered to be heard
   * late); when the track heard ends, the newest one left is read. The media process does
   * the same.
   */
  #onTrack(track: RemoteTrack): void {
    if (track.kind !== TrackKind.KIND_AUDIO || this.#left) return;
    if (this.#tracks.length > 0) this.#events.drop("agent_track_switched");
    this.#tracks.push(track);
    this.#hearNewest();
  }

  /** The track was unsubscribed (unpublished, or its participant left), or its stream ended. */
  #onTrackGone(track: RemoteTrack): void {
    const i = this.#tracks.findIndex((t) => t.sid === track.sid);
    if (i < 0 || this.#left) return;
    this.#tracks.splice(i, 1);
    if (this.#heard?.track.sid !== track.sid) return;
    if (this.#tracks.length > 0) this.#events.drop("agent_track_back");
    this.#hearNewest();
  }

  #hearNewest(): void {
    const track = this.#tracks.at(-1);
    if (this.#heard?.track === track) return;
    const old = this.#heard;
    this.#heard = undefined;
    void old?.reader.cancel().catch(() => {});
    if (!track) return;
    const reader = new AudioStream(track, { sampleRate: DOWN_RATE, numChannels: 1 }).getReader();
    this.#heard = { track, reader };
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (this.#heard?.reader !== reader || this.#left) return;
        if (done || !value) return this.#onTrackGone(track);
        this.#h.agentAudio(Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength));
      }
    })();
  }
}
