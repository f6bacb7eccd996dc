/**
 * The framing between the gateway and its media process (media/internal/ipc/ipc.go is the
 * other end; docs/media-process.md is the reference). Pure: bytes in, records out.
 *
 *   frame := u32 LE length of what follows | u8 type | u32 LE session | body
 *
 * Strings are u16 LE length + UTF-8, maps a u16 count of string pairs, and audio is the
 * rest of the body as raw bytes: never JSON.
 */
import type { ParticipantKind } from "../room-transport.ts";

/** Largest frame, length field included (MaxFrame in ipc.go). */
export const MAX_FRAME = 64 * 1024;
const HEADER = 9;

export const ToMediaType = { join: 0x01, opus: 0x02, data: 0x03, leave: 0x04, ping: 0x05 } as const;
export const FromMediaType = {
  ready: 0x80,
  joined: 0x81,
  join_failed: 0x82,
  disconnected: 0x83,
  participant_joined: 0x84,
  participant_left: 0x85,
  attributes: 0x86,
  data: 0x87,
  text: 0x88,
  agent_rtp: 0x89,
  left: 0x8a,
  counters: 0x8b,
  pong: 0x8c,
} as const;

export type ToMedia =
  | { readonly kind: "join"; readonly session: number; readonly url: string; readonly token: string }
  | {
      readonly kind: "opus";
      readonly session: number;
      readonly timestamp: number;
      readonly durationMs: number;
      readonly opus: Uint8Array;
    }
  | { readonly kind: "data"; readonly session: number; readonly topic: string; readonly payload: Uint8Array }
  | { readonly kind: "leave"; readonly session: number }
  /** Session 0: the child answers `pong` with the same number from its read loop. */
  | { readonly kind: "ping"; readonly session: 0; readonly seq: number };

type Attrs = Readonly<Record<string, string>>;

export type FromMedia =
  | { readonly kind: "ready"; readonly session: number; readonly version: string }
  | { readonly kind: "joined"; readonly session: number; readonly identity: string }
  | { readonly kind: "join_failed"; readonly session: number; readonly reason: string }
  | { readonly kind: "disconnected"; readonly session: number; readonly reason: string }
  | {
      readonly kind: "participant_joined";
      readonly session: number;
      readonly identity: string;
      readonly participantKind: ParticipantKind;
      readonly attributes: Attrs;
    }
  | { readonly kind: "participant_left"; readonly session: number; readonly identity: string }
  | {
      readonly kind: "attributes";
      readonly session: number;
      readonly identity: string;
      readonly attributes: Attrs;
    }
  | {
      readonly kind: "data";
      readonly session: number;
      readonly topic: string;
      readonly from: string;
      readonly payload: Buffer;
    }
  | {
      readonly kind: "text";
      readonly session: number;
      readonly streamId: string;
      readonly topic: string;
      readonly from: string;
      readonly attributes: Attrs;
      /** The stream ended: nothing of it follows. */
      readonly done: boolean;
      /** With `done`: it failed before its end, so its text is not whole. */
      readonly aborted: boolean;
      readonly text: string;
    }
  | {
      readonly kind: "agent_rtp";
      readonly session: number;
      /**
       * The generation of the agent track heard (u16, wrapping): the media process moves it
       * on each time the heard track changes, so a newer one is a new track's packet.
       */
      readonly generation: number;
      readonly sequence: number;
      readonly timestamp: number;
      readonly payload: Buffer;
    }
  | { readonly kind: "left"; readonly session: number }
  | {
      readonly kind: "counters";
      readonly session: number;
      readonly counts: Readonly<Record<string, number>>;
    }
  | { readonly kind: "pong"; readonly session: number; readonly seq: number };

/**
 * What the media binary says in its `ready` frame: the framing it speaks
 * (media/cmd/voice-media, `version`). Both change together; the gateway refuses a binary
 * that says anything else, so it never runs against one left over from an older build.
 */
export const MEDIA_PROTOCOL_VERSION = "voice-media 4";

export type DecodeError = { readonly error: "short_body" | "unknown_type" | "bad_field" };

const utf8 = new TextEncoder();

function stringBytes(s: string): Uint8Array {
  const b = utf8.encode(s);
  if (b.length > 0xffff) throw new RangeError(`IPC string of ${b.length} bytes (max 65535)`);
  return b;
}

/** One frame for the media process. Throws RangeError when it would exceed MAX_FRAME. */
export function encodeToMedia(m: ToMedia): Buffer {
  const parts: Uint8Array[] = [];
  const str = (s: string) => {
    const b = stringBytes(s);
    const len = Buffer.allocUnsafe(2);
    len.writeUInt16LE(b.length);
    parts.push(len, b);
  };
  switch (m.kind) {
    case "join":
      str(m.url);
      str(m.token);
      break;
    case "opus": {
      const h = Buffer.allocUnsafe(6);
      h.writeUInt32LE(m.timestamp >>> 0, 0);
      h.writeUInt16LE(m.durationMs, 4);
      parts.push(h, m.opus);
      break;
    }
    case "data":
      str(m.topic);
      parts.push(m.payload);
      break;
    case "leave":
      break;
    case "ping": {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32LE(m.seq >>> 0, 0);
      parts.push(b);
      break;
    }
  }
  let body = 0;
  for (const p of parts) body += p.length;
  const total = HEADER + body;
  if (total > MAX_FRAME) throw new RangeError(`IPC frame of ${total} bytes (max ${MAX_FRAME})`);
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(total - 4, 0);
  out.writeUInt8(ToMediaType[m.kind], 4);
  out.writeUInt32LE(m.session >>> 0, 5);
  let at = HEADER;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a body field by field; the first short read marks it failed. */
class Cursor {
  #at = 0;
  failed = false;
  constructor(readonly buf: Buffer) {}
  #take(n: number): Buffer {
    if (this.failed || this.#at + n > this.buf.length) {
      this.failed = true;
      return Buffer.alloc(0);
    }
    const b = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return b;
  }
  u8(): number {
    return this.#take(1)[0] ?? 0;
  }
  u16(): number {
    const b = this.#take(2);
    return b.length === 2 ? b.readUInt16LE(0) : 0;
  }
  u32(): number {
    const b = this.#take(4);
    return b.length === 4 ? b.readUInt32LE(0) : 0;
  }
  str(): string {
    return this.#take(this.u16()).toString("utf8");
  }
  map(): Record<string, string> {
    const n = this.u16();
    const m: Record<string, string> = {};
    for (let i = 0; i < n && !this.failed; i++) {
      const k = this.str();
      m[k] = this.str();
    }
    return m;
  }
  rest(): Buffer {
    if (this.failed) return Buffer.alloc(0);
    const b = this.buf.subarray(this.#at);
    this.#at = this.buf.length;
    return b;
  }
}

const KINDS: Record<number, ParticipantKind> = {
  0: "standard",
  1: "ingress",
  2: "egress",
  3: "sip",
  4: "agent",
};

/** Decodes one frame's type, session and body (as split by FrameSplitter). */
export function decodeFromMedia(type: number, session: number, body: Buffer): FromMedia | DecodeError {
  const c = new Cursor(body);
  const m = decodeBody(type, session, c);
  if (m === undefined) return { error: "unknown_type" };
  return c.failed ? { error: "short_body" } : m;
}

/** How a text frame stands in its stream (ipc.go, TextOpen, TextDone, TextAborted). */
const TEXT_ENDS: Record<number, { readonly done: boolean; readonly aborted: boolean }> = {
  0: { done: false, aborted: false },
  1: { done: true, aborted: false },
  2: { done: true, aborted: true },
};

function decodeBody(type: number, session: number, c: Cursor): FromMedia | DecodeError | undefined {
  switch (type) {
    case FromMediaType.ready:
      return { kind: "ready", session, version: c.str() };
    case FromMediaType.joined:
      return { kind: "joined", session, identity: c.str() };
    case FromMediaType.join_failed:
      return { kind: "join_failed", session, reason: c.str() };
    case FromMediaType.disconnected:
      return { kind: "disconnected", session, reason: c.str() };
    case FromMediaType.participant_joined: {
      const identity = c.str();
      const participantKind = KINDS[c.u8()] ?? "other";
      return { kind: "participant_joined", session, identity, participantKind, attributes: c.map() };
    }
    case FromMediaType.participant_left:
      return { kind: "participant_left", session, identity: c.str() };
    case FromMediaType.attributes:
      return { kind: "attributes", session, identity: c.str(), attributes: c.map() };
    case FromMediaType.data:
      return { kind: "data", session, topic: c.str(), from: c.str(), payload: Buffer.from(c.rest()) };
    case FromMediaType.text: {
      const streamId = c.str();
      const topic = c.str();
      const from = c.str();
      const attributes = c.map();
      const end = TEXT_ENDS[c.u8()];
      if (end === undefined) return { error: "bad_field" };
      return {
        kind: "text",
        session,
        streamId,
        topic,
        from,
        attributes,
        ...end,
        text: c.rest().toString("utf8"),
      };
    }
    case FromMediaType.agent_rtp:
      return {
        kind: "agent_rtp",
        session,
        generation: c.u16(),
        sequence: c.u16(),
        timestamp: c.u32(),
        // A copy: the chunk it came in is shared by every frame of one pipe read.
        payload: Buffer.from(c.rest()),
      };
    case FromMediaType.left:
      return { kind: "left", session };
    case FromMediaType.counters: {
      const n = c.u16();
      const counts: Record<string, number> = {};
      for (let i = 0; i < n && !c.failed; i++) {
        const name = c.str();
        counts[name] = c.u32();
      }
      return { kind: "counters", session, counts };
    }
    case FromMediaType.pong:
      return { kind: "pong", session, seq: c.u32() };
    default:
      return undefined;
  }
}

export interface RawFrame {
  readonly type: number;
  readonly session: number;
  readonly body: Buffer;
}

/**
 * Splits the media process's byte stream into frames. A length out of range means the
 * stream is corrupt and cannot be resynchronised: push() then returns `corrupt` and the
 * supervisor restarts the process.
 */
export class FrameSplitter {
  #pending: Buffer = Buffer.alloc(0);

  get buffered(): number {
    return this.#pending.length;
  }

  push(chunk: Buffer): { frames: RawFrame[]; corrupt: boolean } {
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: RawFrame[] = [];
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUInt32LE(at);
      if (len < HEADER - 4 || len + 4 > MAX_FRAME) {
        this.#pending = Buffer.alloc(0);
        return { frames, corrupt: true };
      }
      if (buf.length - at < len + 4) break;
      frames.push({
        type: buf.readUInt8(at + 4),
        session: buf.readUInt32LE(at + 5),
        body: buf.subarray(at + HEADER, at + 4 + len),
      });
      at += len + 4;
    }
    this.#pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    return { frames, corrupt: false };
  }
}
