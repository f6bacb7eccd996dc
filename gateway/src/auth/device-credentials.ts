/**
 * Device MQTT credentials as the OTA issues them (docs/device-protocol.md section 1.3), checked
 * the way the local broker checks them (broker/auth.go): pure, no I/O.
 *
 *   client id  GROUP@@@mac_underscored@@@uuid   (the three-part form; the legacy two-part
 *                                                form carries no signature and is refused)
 *   username   base64 of a JSON object, e.g. {"ip":"1.2.3.4"}
 *   password   base64 (standard alphabet, padded) of
 *              HMAC-SHA256(key, clientId + "|" + username)
 *
 * The key is the raw bytes of the configured string (MQTT_SIGNING_KEY), exactly as the
 * broker and the OTA use it: a hex-looking key is not hex-decoded.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { parseDeviceClientId } from "../protocol/client-id.ts";

/** Broker contract rule 10: a client id is one topic level of 1 to 128 bytes. */
export const MAX_CLIENT_ID_BYTES = 128;
/** The OTA's username is `{"ip":"..."}` in base64; anything much longer is not one. */
export const MAX_USERNAME_BYTES = 1024;

export interface DeviceCredentials {
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
}

export type CredentialRejection =
  /** Not 1..128 bytes, or holds `/`, `+`, `#` or NUL (contract rule 10). */
  | "bad_client_id"
  /**
   * Not well-formed text (a lone surrogate), or holds a character the OTA never signs and a
   * client should not send (MQTT 3.1.1 section 1.5.3, MQTT 5 section 1.5.4): see
   * refusedCharacter.
   */
  | "client_id_bad_characters"
  /** Not the three-part `GROUP@@@MAC@@@UUID` form, or a part is empty. */
  | "client_id_not_signable"
  /** The MAC part is not six lowercase hex pairs. */
  | "bad_mac"
  /** Not standard padded base64 of a JSON object. */
  | "bad_username"
  /** The password is not the HMAC of client id and username under our key. */
  | "bad_password";

export type VerifyResult =
  | { readonly ok: true; readonly mac: string }
  | { readonly ok: false; readonly reason: CredentialRejection };

/** The device password for these credentials: base64(std, padded) HMAC-SHA256. */
export function deviceSignature(key: string | Buffer, clientId: string, username: string): string {
  return createHmac("sha256", key).update(`${clientId}|${username}`, "utf8").digest("base64");
}

export function verifyDeviceCredentials(key: string | Buffer, creds: DeviceCredentials): VerifyResult {
  if (key.length === 0) throw new RangeError("verifyDeviceCredentials: empty signing key");
  const { clientId, username, password } = creds;
  const idBytes = Buffer.byteLength(clientId, "utf8");
  if (idBytes === 0 || idBytes > MAX_CLIENT_ID_BYTES || /[/+#\0]/.test(clientId)) {
    return { ok: false, reason: "bad_client_id" };
  }
  if (hasRefusedCharacter(clientId)) return { ok: false, reason: "client_id_bad_characters" };
  const parts = clientId.split("@@@");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) {
    return { ok: false, reason: "client_id_not_signable" };
  }
  const parsed = parseDeviceClientId(clientId);
  if (!parsed.ok)
    return { ok: false, reason: parsed.reason === "bad_mac" ? "bad_mac" : "client_id_not_signable" };
  if (!isBase64JsonObject(username)) return { ok: false, reason: "bad_username" };
  const want = Buffer.from(deviceSignature(key, clientId, username), "utf8");
  const got = Buffer.from(password, "utf8");
  // timingSafeEqual needs equal lengths; the expected length (44) is public, so comparing
  // `want` with itself on a length mismatch only keeps the time the same.
  const same = got.length === want.length ? timingSafeEqual(got, want) : !timingSafeEqual(want, want);
  return same ? { ok: true, mac: parsed.id.mac } : { ok: false, reason: "bad_password" };
}

/**
 * Whether a client id holds a code point it may not: a lone surrogate (not well-formed;
 * UTF-8 encodes it as U+FFFD's bytes, so a password signed for the U+FFFD id verified for
 * it), U+FFFD itself (what a lenient decoder makes of bytes it could not read: an id holding
 * it cannot be told from one that held them), C0 and C1 controls and DEL, and the Unicode
 * non-characters. MQTT requires well-formed UTF-8 and says a client SHOULD NOT send the
 * controls and non-characters. broker/auth.go (refusedCharacter) refuses the same.
 */
export function hasRefusedCharacter(text: string): boolean {
  // Iterating a string yields whole code points, and a lone surrogate as itself.
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (
      cp <= 0x1f ||
      (cp >= 0x7f && cp <= 0x9f) ||
      (cp >= 0xd800 && cp <= 0xdfff) ||
      cp === 0xfffd ||
      (cp >= 0xfdd0 && cp <= 0xfdef) ||
      (cp & 0xfffe) === 0xfffe
    ) {
      return true;
    }
  }
  return false;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict: standard alphabet, padded, canonical, decoding to UTF-8 JSON that is an object. */
function isBase64JsonObject(username: string): boolean {
  if (username.length === 0 || username.length > MAX_USERNAME_BYTES || !BASE64.test(username)) return false;
  const bytes = Buffer.from(username, "base64");
  // Non-canonical trailing bits (e.g. "eyJ9" vs "eyI=") would decode the same: refuse them.
  if (bytes.toString("base64") !== username) return false;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return false;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
