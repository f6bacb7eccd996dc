/**
 * Gateway configuration: environment (and the optional env file it names) in, a typed
 * and validated GatewayConfig out. A bad or missing value is an error naming the variable;
 * main.ts prints it and exits non-zero. Secrets are kept out of `describeConfig`.
 */
import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import {
  DEFAULT_ADDRESS_LIMIT,
  DEFAULT_SOURCE_LIMIT,
  type UdpSourceLimits,
} from "./session/source-limiter.ts";

export type AgentDispatchConfig =
  | { readonly kind: "agent"; readonly agentName: string }
  | { readonly kind: "webhook"; readonly url: string; readonly bearer: string | undefined }
  | { readonly kind: "none" };

export interface LiveKitConfig {
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** How the agent gets into a session's room. */
  readonly dispatch: AgentDispatchConfig;
  /** LiveKit deletes a room this long after its last participant left. */
  readonly emptyTimeoutS: number;
  /** Ghost-room sweep period; 0 disables the periodic sweep (it still runs at start). */
  readonly sweepIntervalMs: number;
  /**
   * The message that makes the agent greet (docs/agent-data-channel.md): `agent_ready`
   * (default; both deployed agent versions greet on it) or `start_greeting` (only the
   * current version, as BUNNY sends it). Never both: the current version would greet twice.
   */
  readonly greeting: "agent_ready" | "start_greeting";
  /**
   * How rooms move media (LIVEKIT_MEDIA): `process` (default), the Go media process that
   * forwards the device's Opus unchanged (docs/media-process.md), or `rtc-node`, in-process.
   */
  readonly media: "process" | "rtc-node";
}

export interface GatewayConfig {
  /** 1..999; names this instance in session ids, its MQTT client id and its logs. */
  readonly instanceId: number;
  readonly udpPort: number;
  readonly udpBind: string;
  /** Per-source-address UDP rate limit (UDP_SOURCE_RATE packets/s, bursts of UDP_SOURCE_BURST). */
  readonly udpSourceLimit: UdpSourceLimits;
  /** The address devices are told to send UDP to (`udp.server` in the hello reply). */
  readonly publicHost: string;
  readonly workerCount: number;
  readonly healthPort: number;
  /** Health and metrics listen here; loopback unless set (never public by default). */
  readonly healthBind: string;
  readonly mqttUrl: string;
  readonly mqttUsername: string;
  readonly mqttPassword: string;
  /**
   * MQTT keepalive, s: the broker drops (and fires the will of) an instance silent for
   * 1.5x this. 5 s: a stopped instance is declared gone within 7.5 s (docs/reliability.md).
   */
  readonly mqttKeepaliveS: number;
  /** Main event loop stalled (or process frozen) this long: exit, PM2 restarts. 0 disables. */
  readonly watchdogStallMs: number;
  /**
   * A hello is passed on to the least loaded instance when this one holds this many more
   * sessions (the broker's hash alone spreads unevenly); 0 disables.
   */
  readonly helloBalanceSlack: number;
  /** libopus encoder complexity for downstream audio, 0..10. */
  readonly opusComplexity: number;
  readonly opusBitrate: number;
  /** Log an alert and raise a metric above this many sessions. */
  readonly sessionAlertThreshold: number;
  /** A session with no device message and no UDP audio for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Hard cap on one session's length. */
  readonly maxSessionMs: number;
  /** SIGTERM/SIGINT: time allowed for goodbyes and cleanup before exiting anyway. */
  readonly drainTimeoutMs: number;
  readonly totalsIntervalMs: number;
  readonly logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  /** Undefined: no LiveKit credentials, the echo agent serves devices. */
  readonly livekit: LiveKitConfig | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads GATEWAY_ENV_FILE (if set) under the process environment, which wins. */
export function loadEnv(processEnv: Env = process.env): Env {
  const file = processEnv.GATEWAY_ENV_FILE;
  if (!file) return processEnv;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(
      "GATEWAY_ENV_FILE",
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  let fromFile: Record<string, string>;
  try {
    fromFile = parseEnv(text) as Record<string, string>;
  } catch (err) {
    throw new ConfigError("GATEWAY_ENV_FILE", `cannot parse ${file}: ${(err as Error).message}`);
  }
  return { ...fromFile, ...stripUndefined(processEnv) };
}

export function parseConfig(env: Env): GatewayConfig {
  const instanceId = int(env, "INSTANCE_ID", 1, 1, 999);
  const livekit = liveKit(env);
  return {
    instanceId,
    // 0 (any free port) is for tests; the hello reply carries the bound port.
    udpPort: int(env, "UDP_PORT", 8881, 0, 65535),
    udpBind: str(env, "UDP_BIND", "0.0.0.0"),
    udpSourceLimit: {
      perSocket: {
        ratePerSecond: int(env, "UDP_SOURCE_RATE", DEFAULT_SOURCE_LIMIT.ratePerSecond, 1, 1_000_000),
        burst: int(env, "UDP_SOURCE_BURST", DEFAULT_SOURCE_LIMIT.burst, 1, 10_000_000),
        maxSources: DEFAULT_SOURCE_LIMIT.maxSources,
      },
      perAddress: {
        ratePerSecond: int(env, "UDP_ADDRESS_RATE", DEFAULT_ADDRESS_LIMIT.ratePerSecond, 1, 1_000_000),
        burst: int(env, "UDP_ADDRESS_BURST", DEFAULT_ADDRESS_LIMIT.burst, 1, 10_000_000),
        maxSources: DEFAULT_ADDRESS_LIMIT.maxSources,
      },
    },
    publicHost: str(env, "PUBLIC_HOST", "127.0.0.1"),
    workerCount: int(env, "WORKER_COUNT", 4, 1, 64),
    healthPort: int(env, "HEALTH_PORT", 9000 + instanceId, 0, 65535),
    healthBind: str(env, "HEALTH_BIND", "127.0.0.1"),
    mqttUrl: mqttUrl(env),
    mqttUsername: str(env, "MQTT_USERNAME", "gateway"),
    mqttPassword: required(env, "MQTT_PASSWORD"),
    mqttKeepaliveS: int(env, "MQTT_KEEPALIVE_S", 5, 1, 600),
    watchdogStallMs: int(env, "WATCHDOG_STALL_MS", 5000, 0, 600_000),
    helloBalanceSlack: int(env, "HELLO_BALANCE_SLACK", 2, 0, 1_000_000),
    opusComplexity: int(env, "OPUS_COMPLEXITY", 5, 0, 10),
    opusBitrate: int(env, "OPUS_BITRATE", 24000, 6000, 510000),
    sessionAlertThreshold: int(env, "SESSION_ALERT_THRESHOLD", 300, 1, 1_000_000),
    // 120 s: the firmware counts its channel as open only while something arrived from us
    // within the last 120 s (device-protocol.md 6.1); a session silent for longer on both
    // sides is one the device no longer uses (docs/reliability.md).
    idleTimeoutMs: int(env, "IDLE_TIMEOUT_MS", 120_000, 1000, 86_400_000),
    maxSessionMs: int(env, "MAX_SESSION_MS", 3_600_000, 1000, 86_400_000),
    drainTimeoutMs: int(env, "DRAIN_TIMEOUT_MS", 8000, 100, 120_000),
    totalsIntervalMs: int(env, "TOTALS_INTERVAL_MS", 30_000, 100, 3_600_000),
    logLevel: oneOf(env, "LOG_LEVEL", "info", ["trace", "debug", "info", "warn", "error", "fatal"] as const),
    livekit,
  };
}

/** The config as it may be logged: secrets replaced by whether they are set. */
export function describeConfig(c: GatewayConfig): Record<string, unknown> {
  return {
    ...c,
    mqttPassword: "(set)",
    livekit: c.livekit
      ? { url: c.livekit.url, apiKey: c.livekit.apiKey, apiSecret: "(set)" }
      : "(echo agent)",
  };
}

function stripUndefined(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function str(env: Env, name: string, fallback: string): string {
  return raw(env, name) ?? fallback;
}

function required(env: Env, name: string): string {
  const v = raw(env, name);
  if (v === undefined) throw new ConfigError(name, "is required and not set");
  return v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (!/^-?[0-9]+$/.test(v)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be in ${min}..${max}, got ${n}`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(name, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function mqttUrl(env: Env): string {
  const v = str(env, "MQTT_URL", "mqtt://127.0.0.1:1883");
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError("MQTT_URL", `is not a URL: ${JSON.stringify(v)}`);
  }
  if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") {
    throw new ConfigError("MQTT_URL", "must start with mqtt:// or mqtts://");
  }
  if (url.username || url.password) {
    throw new ConfigError("MQTT_URL", "must not carry credentials; use MQTT_USERNAME and MQTT_PASSWORD");
  }
  return v;
}

function liveKitMedia(env: Env): "process" | "rtc-node" {
  const v = raw(env, "LIVEKIT_MEDIA") ?? "process";
  if (v !== "process" && v !== "rtc-node")
    throw new ConfigError("LIVEKIT_MEDIA", "must be process or rtc-node");
  return v;
}

function liveKit(env: Env): LiveKitConfig | undefined {
  const url = raw(env, "LIVEKIT_URL");
  const apiKey = raw(env, "LIVEKIT_API_KEY");
  const apiSecret = raw(env, "LIVEKIT_API_SECRET");
  if (url === undefined && apiKey === undefined && apiSecret === undefined) return undefined;
  for (const [name, value] of [
    ["LIVEKIT_URL", url],
    ["LIVEKIT_API_KEY", apiKey],
    ["LIVEKIT_API_SECRET", apiSecret],
  ] as const) {
    if (value === undefined) {
      throw new ConfigError(
        name,
        "is required when any LIVEKIT_* variable is set (unset all three for the echo agent)",
      );
    }
  }
  if (!/^(wss?|https?):\/\//.test(url as string)) {
    throw new ConfigError("LIVEKIT_URL", "must be a ws(s):// or http(s):// URL");
  }
  const agentName = raw(env, "AGENT_NAME");
  const webhook = raw(env, "AGENT_WEBHOOK_URL");
  if (agentName && webhook)
    throw new ConfigError("AGENT_WEBHOOK_URL", "set AGENT_NAME or AGENT_WEBHOOK_URL, not both");
  if (webhook && !/^https?:\/\//.test(webhook))
    throw new ConfigError("AGENT_WEBHOOK_URL", "must be an http(s):// URL");
  const dispatch: AgentDispatchConfig = agentName
    ? { kind: "agent", agentName }
    : webhook
      ? { kind: "webhook", url: webhook, bearer: raw(env, "AGENT_WEBHOOK_TOKEN") }
      : { kind: "none" };
  return {
    url: url as string,
    apiKey: apiKey as string,
    apiSecret: apiSecret as string,
    dispatch,
    emptyTimeoutS: int(env, "LIVEKIT_EMPTY_TIMEOUT_S", 60, 1, 86_400),
    sweepIntervalMs: int(env, "LIVEKIT_SWEEP_INTERVAL_MS", 300_000, 0, 86_400_000),
    greeting: agentGreeting(env),
    media: liveKitMedia(env),
  };
}

function agentGreeting(env: Env): "agent_ready" | "start_greeting" {
  const v = raw(env, "AGENT_GREETING") ?? "agent_ready";
  if (v !== "agent_ready" && v !== "start_greeting")
    throw new ConfigError("AGENT_GREETING", "must be agent_ready or start_greeting");
  return v;
}
