/**
 * The device verifier's configuration, read from the same environment (and env file,
 * GATEWAY_ENV_FILE) as the gateways: the signing key is MQTT_SIGNING_KEY in
 * /etc/voice-gateway/gateway.env on the droplet.
 *
 * No key is a configuration error (the process exits 2 naming MQTT_SIGNING_KEY): a
 * verifier that allowed everyone by accident would open the broker to the internet. Only
 * VERIFIER_INSECURE_DEV=1, said explicitly, allows every device without a key.
 */
import { ConfigError, type Env, envInt, envOneOf, envValue } from "../env.ts";

export interface VerifierConfig {
  readonly port: number;
  readonly bind: string;
  /** Undefined only in insecure development mode. */
  readonly signingKey: string | undefined;
  readonly insecureDev: boolean;
  /** Insecure mode repeats its warning this often. */
  readonly warnIntervalMs: number;
  /** Counters are logged this often. */
  readonly totalsIntervalMs: number;
  readonly logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

export function parseVerifierConfig(env: Env): VerifierConfig {
  const insecureRaw = envValue(env, "VERIFIER_INSECURE_DEV");
  if (insecureRaw !== undefined && insecureRaw !== "0" && insecureRaw !== "1") {
    throw new ConfigError("VERIFIER_INSECURE_DEV", `must be 1 or unset, got ${JSON.stringify(insecureRaw)}`);
  }
  // The key is used byte for byte as the OTA and broker use it: not trimmed, not decoded.
  const key = env.MQTT_SIGNING_KEY;
  const signingKey = key === undefined || key.trim() === "" ? undefined : key;
  const insecureDev = signingKey === undefined && insecureRaw === "1";
  if (signingKey === undefined && !insecureDev) {
    throw new ConfigError(
      "MQTT_SIGNING_KEY",
      "is required: the device verifier refuses to start without the key the OTA signs device passwords with (VERIFIER_INSECURE_DEV=1 allows every device, for development only)",
    );
  }
  return {
    port: envInt(env, "VERIFIER_PORT", 9100, 0, 65535),
    bind: envValue(env, "VERIFIER_BIND") ?? "127.0.0.1",
    signingKey,
    insecureDev,
    warnIntervalMs: envInt(env, "VERIFIER_WARN_INTERVAL_MS", 60_000, 100, 3_600_000),
    totalsIntervalMs: envInt(env, "VERIFIER_TOTALS_INTERVAL_MS", 60_000, 100, 3_600_000),
    logLevel: envOneOf(env, "LOG_LEVEL", "info", LEVELS),
  };
}

/** True when VERIFIER_INSECURE_DEV=1 was given although a key is set (the key wins). */
export function insecureFlagIgnored(env: Env, config: VerifierConfig): boolean {
  return config.signingKey !== undefined && envValue(env, "VERIFIER_INSECURE_DEV") === "1";
}
