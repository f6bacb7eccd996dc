/**
 * The `process` room transport: the session's participant lives in the media process
 * (media-process.ts). Upstream, the device's Opus goes out unchanged with RTP timestamps
 * that follow the device's timing (upstream-clock.ts). Downstream, the agent's RTP is put
 * back in order (jitter-buffer.ts), grouped one downstream frame at a time
 * (decode-groups.ts), decoded in the Opus worker pool straight to 24 kHz mono, one job per
 * group, and handed up as PCM; a lost packet is concealed by libopus (decoding an empty
 * packet is its packet-loss concealment), and so is one that fails to decode. DTX or no
 * packets: nothing is handed up, and the turn logic above ends the turn on its own deadline.
 */

import { randomInt } from "node:crypto";
import type { OpusPool, OpusStream } from "../../../audio/opus-pool.ts";
import { DOWN_FRAME_MS, DOWN_RATE } from "../../../protocol/audio-format.ts";
import { packetDurationTenthsMs } from "../../../protocol/opus-packet.ts";
import type { UpstreamOpus } from "../../agent-bridge.ts";
import type {
  RoomJoin,
  RoomTransport,
  RoomTransportFactory,
  RoomTransportHandlers,
} from "../room-transport.ts";
import { DecodeGroups, type GroupEntry } from "./decode-groups.ts";
import type { FromMedia } from "./ipc-codec.ts";
import { JitterBuffer } from "./jitter-buffer.ts";
import type { MediaProcess } from "./media-process.ts";
import { isServerBlankFrame } from "./server-blank-frame.ts";
import { UpstreamClock } from "./upstream-clock.ts";

export interface ProcessTransportDeps {
  readonly media: MediaProcess;
  readonly pool: OpusPool;
  drop(reason: string): void;
  /** Agent RTP arrival to PCM handed up, seconds (reorder wait plus decode). */
  decoded?(seconds: number): void;
  /** Injected for tests; performance.now by default. */
  readonly now?: () => number;
  readonly joinTimeoutMs?: number;
  readonly leaveTimeoutMs?: number;
}

/** A missing agent packet is waited for this long once a later one is here. */
const REORDER_WAIT_MS = 30;
const REORDER_MAX_PACKETS = 16;
/** Concealment covers at most this many lost packets in a row; longer is silence. */
const MAX_CONCEALED = 5;
/**
 * Decode groups (decode-groups.ts): a packet after this long without one starts a burst;
 * an open group is decoded this long after its newest packet at the latest (agents send
 * every 20 ms, so a group that has waited 25 ms for the next packet is not getting it soon).
 */
const BURST_GAP_MS = 100;
const GROUP_LATE_MS = 25;
const EMPTY = Buffer.alloc(0);

export function processTransportFactory(deps: ProcessTransportDeps): RoomTransportFactory {
  return (join, handlers) => new ProcessTransport(join, handlers, deps);
}

type JoinWait = { resolve: () => void; reject: (err: Error) => void };

export class ProcessTransport implements RoomTransport {
  readonly #join: RoomJoin;
  readonly #handlers: RoomTransportHandlers;
  readonly #deps: ProcessTransportDeps;
  readonly #now: () => number;
  readonly #clock = new UpstreamClock(randomInt(1, 2 ** 31));
  readonly #jitter = new JitterBuffer({ maxPackets: REORDER_MAX_PACKETS, waitMs: REORDER_WAIT_MS });
  readonly #participants = new Set<string>();
  #session: number | undefined;
  #joinWait: JoinWait | undefined;
  #leftWait: (() => void) | undefined;
  #decoder: OpusStream | undefined;
  readonly #groups = new DecodeGroups({
    frameMs: DOWN_FRAME_MS,
    burstGapMs: BURST_GAP_MS,
    lateMs: GROUP_LATE_MS,
  });
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  #joined = false;
  #gone = false;

  constructor(join: RoomJoin, handlers: RoomTransportHandlers, deps: ProcessTransportDeps) {
    this.#join = join;
    this.#handlers = handlers;
    this.#deps = deps;
    this.#now = deps.now ?? (() => performance.now());
  }

  async join(): Promise<void> {
    if (this.#gone) throw new Error("transport left");
    await this.#deps.media.start();
    // leave() came while the media process was starting: it had no session to end, so none
    // may be opened now (its joined would be ignored and nothing would leave the room).
    if (this.#gone) throw new Error("transport left");
    const session = this.#deps.media.open((m) => this.#onFrame(m));
    if (session === undefined) throw new Error("media process not running");
    this.#session = session;
    const timeoutMs = this.#deps.joinTimeoutMs ?? 12_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`join timed out after ${timeoutMs} ms`)), timeoutMs);
      // Settled at once, not when this function resumes: frames read in the same chunk as
      // `joined` (a `disconnected` right behind it) are handled before it resumes, and a
      // `disconnected` that found the wait still set would settle nothing and be lost.
      this.#joinWait = {
        resolve: () => {
          clearTimeout(timer);
          this.#joinWait = undefined;
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          this.#joinWait = undefined;
          reject(err);
        },
      };
      // Not sent (the process is going down, or the frame is over MAX_FRAME): fail now, not
      // after the join timeout.
      const refused = this.#deps.media.deliver({
        kind: "join",
        session,
        url: this.#join.url,
        token: this.#join.token,
      });
      if (refused) this.#joinWait.reject(new Error(`join not sent to the media process: ${refused}`));
    }).catch(async (err: Error) => {
      this.#joinWait = undefined;
      await this.leave();
      throw err;
    });
    this.#joinWait = undefined;
  }

  pushPcm(): void {
    this.#deps.drop("media_pcm_unsupported");
  }

  pushOpus(frame: UpstreamOpus): void {
    if (!this.#joined || this.#session === undefined) return this.#deps.drop("agent_not_connected");
    const timestamp = this.#clock.next(this.#now(), frame.durationMs, frame.sequence);
    this.#deps.media.send({
      kind: "opus",
      session: this.#session,
      timestamp,
      durationMs: frame.durationMs,
      opus: frame.opus,
    });
  }

  async sendData(payload: Uint8Array, topic?: string): Promise<void> {
    if (!this.#joined || this.#session === undefined) throw new Error("not joined");
    if (!this.#deps.media.send({ kind: "data", session: this.#session, topic: topic ?? "", payload }))
      throw new Error("media process refused the data packet");
  }

  async leave(): Promise<void> {
    if (this.#gone) return;
    this.#gone = true;
    this.#joined = false;
    // A join still waiting for `joined` fails now rather than at its timeout: its answer
    // would be ignored, and the participant is told to leave below.
    this.#joinWait?.reject(new Error("transport left"));
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#jitter.reset();
    this.#groups.reset();
    if (this.#decoder) this.#deps.pool.close(this.#decoder);
    this.#decoder = undefined;
    const session = this.#session;
    if (session === undefined) return;
    // Wait for the media process to confirm the participant is gone (bounded). Not if the
    // session is no longer open there: the process that had it is gone, and its
    // participants with it; a process started since knows nothing of it and would only
    // confirm an unknown session, its answer for a session already released.
    if (this.#deps.media.isOpen(session)) {
      const timeoutMs = this.#deps.leaveTimeoutMs ?? 5000;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#leftWait = () => {
          clearTimeout(timer);
          resolve();
        };
        if (!this.#deps.media.send({ kind: "leave", session })) this.#leftWait();
      });
    }
    this.#leftWait = undefined;
    this.#deps.media.release(session);
  }

  #onFrame(m: FromMedia): void {
    switch (m.kind) {
      case "joined":
        if (this.#gone) return;
        this.#joined = true;
        return this.#joinWait?.resolve();
      case "join_failed":
        return this.#joinWait?.reject(new Error(`join failed: ${m.reason}`));
      case "disconnected":
        if (this.#joinWait) return this.#joinWait.reject(new Error(`disconnected: ${m.reason}`));
        if (this.#gone) return this.#leftWait?.();
        this.#joined = false;
        return this.#handlers.disconnected(m.reason);
      case "left":
        return this.#leftWait?.();
      case "participant_joined":
        if (this.#gone || this.#participants.has(m.identity)) return;
        this.#participants.add(m.identity);
        return this.#handlers.participantJoined({
          identity: m.identity,
          kind: m.participantKind,
          attributes: m.attributes,
        });
      case "participant_left":
        if (!this.#participants.delete(m.identity) || this.#gone) return;
        return this.#handlers.participantLeft(m.identity);
      case "attributes":
        if (this.#gone) return;
        return this.#handlers.attributesChanged(m.identity, m.attributes);
      case "data":
        if (this.#gone) return;
        return this.#handlers.data(m.payload, m.topic || undefined, m.from || undefined);
      case "text":
        if (this.#gone) return;
        return this.#handlers.text({
          streamId: m.streamId,
          topic: m.topic,
          from: m.from,
          attributes: m.attributes,
          text: m.text,
          done: m.done,
          aborted: m.aborted,
        });
      case "agent_rtp":
        if (this.#gone) return;
        return this.#onRtp(m.generation, m.sequence, m.timestamp, m.payload);
      default:
        return;
    }
  }

  #onRtp(generation: number, sequence: number, timestamp: number, payload: Buffer): void {
    const now = this.#now();
    // A drop (late, duplicate, far, old_track) or a restart (new_track, resync):
    // agent_rtp_<reason>.
    const counted = this.#jitter.push({ generation, sequence, timestamp, payload, arrivedMs: now }, now);
    if (counted) this.#deps.drop(`agent_rtp_${counted}`);
    this.#release(now);
  }

  /** Moves what the reorder buffer lets go into decode groups; hands over those that close. */
  #release(now: number): void {
    for (const r of this.#jitter.pop(now)) {
      if (r.kind === "packet") {
        const payload = r.packet.payload;
        // Kept in the reorder buffer (they hold sequence numbers), never decoded.
        if (isServerBlankFrame(payload)) {
          this.#deps.drop("agent_rtp_server_blank");
          continue;
        }
        const entry: GroupEntry = { kind: "packet", payload, arrivedMs: r.packet.arrivedMs ?? now };
        this.#decode(
          this.#groups.add(entry, payload.length > 0 ? packetDurationTenthsMs(payload) : 0, now),
          true,
        );
        continue;
      }
      this.#deps.drop("agent_rtp_lost");
      if (r.overflow) this.#deps.drop("agent_rtp_overflow");
      const concealed = Math.min(r.count, MAX_CONCEALED);
      for (let i = 0; i < concealed; i++) this.#decode(this.#groups.add({ kind: "conceal" }, 0, now), true);
    }
    this.#decode(this.#groups.due(now), false);
    this.#arm(now);
  }

  /** One timer for the reorder buffer's gap and the open decode group, whichever is first. */
  #arm(now: number): void {
    const gap = this.#jitter.deadline;
    const group = this.#groups.deadline;
    const at = gap === undefined ? group : group === undefined ? gap : Math.min(gap, group);
    if (at === undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    // An armed timer that fires no later is kept: #release re-arms for what is left.
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#release(this.#now());
      },
      Math.max(0, at - now),
    );
  }

  /**
   * `timed`: whether the group's latency is measured. A group handed over because its
   * deadline passed completes no frame (the framer keeps its PCM until more audio or the
   * turn's end), so its wait delays nothing the device hears and is not counted as added
   * latency.
   */
  #decode(group: GroupEntry[] | undefined, timed: boolean): void {
    if (!group || group.length === 0) return;
    this.#decoder ??= this.#deps.pool.openDecoder(DOWN_RATE);
    const packets: Buffer[] = [];
    let newest: number | undefined;
    for (const e of group) {
      if (e.kind === "packet") {
        packets.push(e.payload);
        newest = newest === undefined ? e.arrivedMs : Math.max(newest, e.arrivedMs);
      } else packets.push(EMPTY); // libopus conceals on an empty packet
    }
    this.#deps.pool.decodeSequence(this.#decoder, packets).then(
      ({ pcm, undecodable }) => {
        if (this.#gone) return;
        for (let i = 0; i < undecodable; i++) this.#deps.drop("agent_rtp_undecodable");
        this.#handlers.agentAudio(pcm);
        // From the packet that closed the group: the ones before it would have waited for
        // it in the downstream framer anyway.
        if (timed && newest !== undefined) this.#deps.decoded?.((this.#now() - newest) / 1000);
      },
      () => {
        if (this.#gone) return;
        for (let i = 0; i < group.length; i++) this.#deps.drop("agent_rtp_decode_failed");
      },
    );
  }
}
