/**
 * The two ends of a room in the media-process tests: what a room transport reported to its
 * session, and an rtc-node participant in the agent's place that speaks a tone and records
 * what it hears.
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
import { AccessToken } from "livekit-server-sdk";
import type { LiveKitProcess } from "../../../tools/sim/livekit-process.ts";
import type { RoomTransportHandlers, TextStreamChunk } from "../../src/agent/livekit/room-transport.ts";

/** Zero crossings per second / 2: the frequency of a pure tone. */
export function toneHz(pcm: Int16Array, rate: number): number {
  let crossings = 0;
  for (let i = 1; i < pcm.length; i++) if ((pcm[i - 1] as number) < 0 !== (pcm[i] as number) < 0) crossings++;
  return (crossings * rate) / (2 * pcm.length);
}

/** What the transport reported, for assertions. */
export class RoomEventsRecorder implements RoomTransportHandlers {
  joined: string[] = [];
  left: string[] = [];
  attributes: Record<string, string>[] = [];
  received: { payload: string; topic: string | undefined }[] = [];
  texts: TextStreamChunk[] = [];
  pcm: Buffer[] = [];
  lost: { reason: string; at: number }[] = [];
  participantJoined(p: { identity: string }) {
    this.joined.push(p.identity);
  }
  participantLeft(identity: string) {
    this.left.push(identity);
  }
  attributesChanged(_identity: string, attributes: Readonly<Record<string, string>>) {
    this.attributes.push({ ...attributes });
  }
  data(payload: Uint8Array, topic: string | undefined) {
    this.received.push({ payload: Buffer.from(payload).toString(), topic });
  }
  text(chunk: TextStreamChunk) {
    this.texts.push(chunk);
  }
  agentAudio(pcm: Buffer) {
    this.pcm.push(pcm);
  }
  disconnected(reason: string) {
    this.lost.push({ reason, at: performance.now() });
  }
}

/** One of a test agent's audio tracks and the source behind it, which speaks a tone. */
export class AgentVoice {
  readonly source = new AudioSource(24000, 1);
  readonly name: string;
  sid: string | undefined;
  /** The track published from `source`, closed with it at leave. */
  track: LocalAudioTrack | undefined;

  constructor(name: string) {
    this.name = name;
  }

  async speak(ms: number, hz = 300): Promise<void> {
    for (let t = 0; t < ms; t += 20) {
      const data = new Int16Array(480);
      for (let i = 0; i < 480; i++)
        data[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * (t * 24 + i)) / 24000));
      await this.source.captureFrame(new AudioFrame(data, 24000, 1, 480));
    }
  }
}

/** An rtc-node participant in the agent's place. */
export class TestAgent {
  readonly room = new Room();
  readonly heard: Int16Array[] = [];
  readonly data: { text: string; topic: string | undefined }[] = [];
  /** Its first track's voice (published at join). */
  readonly voice = new AgentVoice("agent");
  readonly #voices: AgentVoice[] = [];
  readonly #kind: "agent" | undefined;

  /** `kind`: "agent" joins with an agent token (an agent may send text streams on a participant's behalf). */
  constructor(kind?: "agent") {
    this.#kind = kind;
  }

  async join(lk: LiveKitProcess, room: string): Promise<void> {
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity: `agent-${room}` });
    if (this.#kind) at.kind = this.#kind;
    // canUpdateOwnMetadata: setting attributes (lk.agent.state) needs it.
    at.addGrant({
      room,
      roomJoin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
      canUpdateOwnMetadata: true,
    });
    this.room.on(RoomEvent.DataReceived, (payload, _p, _k, topic) =>
      this.data.push({ text: Buffer.from(payload).toString(), topic }),
    );
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind !== TrackKind.KIND_AUDIO) return;
      void (async () => {
        for await (const f of new AudioStream(track, { sampleRate: 16000, numChannels: 1 }))
          this.heard.push(f.data);
      })().catch(() => {});
    });
    await this.room.connect(lk.url, await at.toJwt(), { autoSubscribe: true, dynacast: false });
    await this.#publish(this.voice);
  }

  /** Publishes another audio track, as an agent that republishes its voice does. */
  async publishVoice(name: string): Promise<AgentVoice> {
    const voice = new AgentVoice(name);
    await this.#publish(voice);
    return voice;
  }

  async unpublish(voice: AgentVoice): Promise<void> {
    if (voice.sid) await this.room.localParticipant?.unpublishTrack(voice.sid);
    voice.sid = undefined;
  }

  async #publish(voice: AgentVoice): Promise<void> {
    const opts = new TrackPublishOptions();
    opts.source = TrackSource.SOURCE_MICROPHONE;
    voice.track = LocalAudioTrack.createAudioTrack(voice.name, voice.source);
    const publication = await this.room.localParticipant?.publishTrack(voice.track, opts);
    voice.sid = publication?.sid;
    this.#voices.push(voice);
  }

  speak(ms: number, hz = 300): Promise<void> {
    return this.voice.speak(ms, hz);
  }

  /** Leaves the room, then frees each voice's native track and source (rtc-node-transport.ts, leave). */
  async leave(): Promise<void> {
    await this.room.disconnect().catch(() => {});
    for (const v of this.#voices) {
      await v.track?.close().catch(() => {});
      await v.source.close().catch(() => {});
    }
  }
}
