/**
 * A stand-in for the media binary, for the supervisor's handling of what a real child would
 * rarely or never write: a shell script that writes frames of the media framing on its
 * stdout (printf, one write each) at points its script chooses. It runs with the child's
 * bare environment (no PATH), as the real binary does.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** One frame from the media process: length, type, session, body (ipc-codec.ts). */
export function fromMediaFrame(type: number, session: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.alloc(9 + body.length);
  frame.writeUInt32LE(frame.length - 4, 0);
  frame[4] = type;
  frame.writeUInt32LE(session, 5);
  body.copy(frame, 9);
  return frame;
}

/** A u16-length-prefixed string, as the framing writes one. */
export function ipcString(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16LE(b.length);
  return Buffer.concat([len, b]);
}

/** A shell command that writes `bytes` in one write. */
export function printfBytes(bytes: Buffer): string {
  return `printf '${[...bytes].map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("")}'`;
}

/** Writes the script (`#!/bin/sh` and these lines) as an executable; dispose() removes it. */
export function standInMedia(lines: readonly string[]): { binary: string; dispose(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "stand-in-media-"));
  const binary = path.join(dir, "voice-media");
  writeFileSync(binary, `#!/bin/sh\n${lines.join("\n")}\n`);
  chmodSync(binary, 0o755);
  return { binary, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
