/**
 * The local box's development signing key (the key the OTA signs device passwords with,
 * and the broker and verifier check them with). Generated once and kept in a 0600 file
 * under .run/, so a real device provisioned by one `npm start` still connects after the
 * next. It is a development key: production's key is the `mqttSigningKey` Pulumi secret.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** 32 random bytes as 64 hex characters (used as the raw string, like every key here). */
const KEY = /^[0-9a-f]{64}$/;

export function loadOrCreateSigningKey(file: string): { key: string; created: boolean } {
  if (existsSync(file)) {
    const key = readFileSync(file, "utf8").trim();
    if (KEY.test(key)) {
      // Tighten a file someone loosened: the key must stay readable by this user only.
      chmodSync(file, 0o600);
      return { key, created: false };
    }
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const key = randomBytes(32).toString("hex");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { key, created: true };
}
