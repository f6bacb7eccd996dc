/**
 * Reads a stack's settings file (Pulumi.<stack>.yaml) the way Pulumi hands config to a
 * program: bare keys of this project, scalar values as text, lists as JSON text. Secrets
 * in the file are encrypted (`secure:`) and cannot be read without the stack's key, so
 * callers that run the program offline (`npm run plan`, tests) get stand-ins for them.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ConfigError, PROJECT } from "./config.ts";
import { SECRET_SPECS } from "./secrets.ts";

export interface StackFile {
  readonly config: Record<string, string>;
  /** Secret keys the file holds (encrypted), by bare key. */
  readonly encryptedKeys: readonly string[];
}

export function readStackFile(file: string): StackFile {
  const doc = parse(readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  const config: Record<string, string> = {};
  const encryptedKeys: string[] = [];
  for (const [fullKey, value] of Object.entries(doc?.config ?? {})) {
    const [ns, key] = fullKey.split(":");
    if (ns !== PROJECT || !key) continue;
    if (typeof value === "object" && value !== null && "secure" in value) encryptedKeys.push(key);
    else if (typeof value === "object" && value !== null) config[key] = JSON.stringify(value);
    else if (value !== null && value !== undefined) config[key] = String(value);
  }
  return { config, encryptedKeys };
}

/**
 * Stand-ins for the secrets a real run would decrypt: valid, incompressible (so user-data
 * sizes are realistic), never real. LiveKit ones only when livekitUrl is set.
 */
export function standInSecrets(config: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of SECRET_SPECS) {
    const livekit = spec.key === "livekitApiKey" || spec.key === "livekitApiSecret";
    const dns = spec.key === "mqttDnsToken";
    if (spec.required || (livekit && config.livekitUrl) || (dns && config.mqttDomain)) {
      out[spec.key] = createHash("sha256").update(`stand-in:${spec.key}`).digest("hex");
    }
  }
  return out;
}

/**
 * Refuses a secret the stack file holds in clear text (`pulumi config set` without
 * `--secret`): the file is committed, so the value would be in git. Names the key, never
 * the value.
 */
export function checkNoClearTextSecrets(file: StackFile): void {
  const clear = SECRET_SPECS.filter((spec) => spec.key in file.config).map(
    (spec) =>
      `${PROJECT}:${spec.key}: in clear text in the stack file: pulumi config set --secret ${spec.key} <value>, ` +
      "and treat the old value as leaked (it is in git history)",
  );
  if (clear.length > 0) throw new ConfigError(clear);
}
