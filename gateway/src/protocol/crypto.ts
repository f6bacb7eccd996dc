/**
 * AES-128-CTR as xiaozhi uses it (docs/device-protocol.md section 3.3): the 16-byte packet
 * header, exactly as sent, is the initial counter block; the same key both ways; no
 * padding and no authentication tag.
 *
 * A fresh cipher per packet: a finalised Node cipher cannot be reused, and caching one per
 * key+IV (as an older gateway did) both grows and breaks on a repeated IV. Creating one
 * costs a few microseconds (see `npm run bench`).
 */
import { createCipheriv, randomBytes } from "node:crypto";

export const AES_KEY_BYTES = 16;

/** Encrypts or decrypts (CTR is symmetric) `data` with `iv` = the packet header. */
export function aesCtr(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv("aes-128-ctr", key, iv);
  const first = cipher.update(data);
  const last = cipher.final();
  return last.length === 0 ? first : Buffer.concat([first, last]);
}

/** Encrypts `plain` into `target` at `offset` (avoids a copy when building a datagram). */
export function aesCtrInto(key: Buffer, iv: Buffer, plain: Buffer, target: Buffer, offset: number): void {
  const cipher = createCipheriv("aes-128-ctr", key, iv);
  const written = cipher.update(plain);
  written.copy(target, offset);
  cipher.final();
}

export function newSessionKey(): Buffer {
  return randomBytes(AES_KEY_BYTES);
}
