/**
 * Gateway configuration: environment (and the optional env file it names) in, a typed
 * and validated GatewayConfig out. A bad or missing value is an error naming the variable;
 * main.ts prints it and exits non-zero. Secrets are kept out of `describeConfig`.
 */

import { LATE_SIGNAL_MS } from "./agent/livekit/agent-protocol/turns.ts";
import type { AgentDispatchConfig, LiveKitConfig } from "./agent/livekit/options.ts";
import { ConfigError, type Env, envInt, envOneOf, envRequired, envString, envValue } from "./env.ts";
import { MIN_WATCHDOG_STALL_MS, WATCHDOG_BEAT_MS } from "./ops/watchdog.ts";
import {
  DEFAULT_ADDRESS_LIMIT,
  DEFAULT_SOURCE_LIMIT,
  type UdpSourceLimits,
} from "./session/source-limiter.ts";

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
  /**
   * Codec streams of each role (decoders, encoders) the main thread runs itself before the
   * rest go to the workers (OPUS_INLINE_STREAMS); 0: every stream in a worker. See
   * docs/performance.md, "The first sessions' codecs on the main thread".
   */
  readonly opusInlineStreams: number;
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

export function parseConfig(env: Env): GatewayConfig {
  const instanceId = envInt(env, "INSTANCE_ID", 1, 1, 999);
  const livekit = liveKit(env);
  return {
    instanceId,
    // 0 (any free port) is for tests; the hello reply carries the bound port.
    udpPort: envInt(env, "UDP_PORT", 8881, 0, 65535),
    udpBind: envString(env, "UDP_BIND", "0.0.0.0"),
    udpSourceLimit: {
      perSocket: {
        ratePerSecond: envInt(env, "UDP_SOURCE_RATE", DEFAULT_SOURCE_LIMIT.ratePerSecond, 1, 1_000_000),
        burst: envInt(env, "UDP_SOURCE_BURST", DEFAULT_SOURCE_LIMIT.burst, 1, 10_000_000),
        maxSources: DEFAULT_SOURCE_LIMIT.maxSources,
      },
      perAddress: {
        ratePerSecond: envInt(env, "UDP_ADDRESS_RATE", DEFAULT_ADDRESS_LIMIT.ratePerSecond, 1, 1_000_000),
        burst: envInt(env, "UDP_ADDRESS_BURST", DEFAULT_ADDRESS_LIMIT.burst, 1, 10_000_000),
        maxSources: DEFAULT_ADDRESS_LIMIT.maxSources,
      },
    },
    publicHost: envString(env, "PUBLIC_HOST", "127.0.0.1"),
    workerCount: envInt(env, "WORKER_COUNT", 4, 1, 64),
    opusInlineStreams: envInt(env, "OPUS_INLINE_STREAMS", 32, 0, 10_000),
    healthPort: envInt(env, "HEALTH_PORT", 9000 + instanceId, 0, 65535),
    healthBind: envString(env, "HEALTH_BIND", "127.0.0.1"),
    mqttUrl: mqttUrl(env),
    mqttUsername: envString(env, "MQTT_USERNAME", "gateway"),
    mqttPassword: envRequired(env, "MQTT_PASSWORD"),
    mqttKeepaliveS: envInt(env, "MQTT_KEEPALIVE_S", 5, 1, 600),
    watchdogStallMs: watchdogStallMs(env),
    helloBalanceSlack: envInt(env, "HELLO_BALANCE_SLACK", 2, 0, 1_000_000),
    opusComplexity: envInt(env, "OPUS_COMPLEXITY", 5, 0, 10),
    opusBitrate: envInt(env, "OPUS_BITRATE", 24000, 6000, 510000),
    sessionAlertThreshold: envInt(env, "SESSION_ALERT_THRESHOLD", 300, 1, 1_000_000),
    // 120 s: the firmware counts its channel as open only while something arrived from us
    // within the last 120 s (device-protocol.md 6.1); a session silent for longer on both
    // sides is one the device no longer uses (docs/reliability.md).
    idleTimeoutMs: envInt(env, "IDLE_TIMEOUT_MS", 120_000, 1000, 86_400_000),
    maxSessionMs: envInt(env, "MAX_SESSION_MS", 3_600_000, 1000, 86_400_000),
    drainTimeoutMs: envInt(env, "DRAIN_TIMEOUT_MS", 8000, 100, 120_000),
    totalsIntervalMs: envInt(env, "TOTALS_INTERVAL_MS", 30_000, 100, 3_600_000),
    logLevel: envOneOf(env, "LOG_LEVEL", "info", [
      "trace",
      "debug",
      "info",
      "warn",
      "error",
      "fatal",
    ] as const),
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

function mqttUrl(env: Env): string {
  const v = envString(env, "MQTT_URL", "mqtt://127.0.0.1:1883");
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

const MAX_WATCHDOG_STALL_MS = 600_000;

/**
 * 0 (off), or long enough that an idle loop never looks stalled: a shorter stall makes a
 * healthy instance kill itself over and over under PM2 (MIN_WATCHDOG_STALL_MS says why).
 */
function watchdogStallMs(env: Env): number {
  const range = `0 (off) or ${MIN_WATCHDOG_STALL_MS}..${MAX_WATCHDOG_STALL_MS}`;
  const v = envValue(env, "WATCHDOG_STALL_MS");
  if (v === undefined) return 5000;
  const n = /^[0-9]+$/.test(v) ? Number(v) : Number.NaN;
  if (n === 0 || (n >= MIN_WATCHDOG_STALL_MS && n <= MAX_WATCHDOG_STALL_MS)) return n;
  throw new ConfigError(
    "WATCHDOG_STALL_MS",
    `must be ${range} (the main loop marks each turn only every ${WATCHDOG_BEAT_MS} ms), got ${JSON.stringify(v)}`,
  );
}

function liveKitMedia(env: Env): "process" | "rtc-node" {
  const v = envValue(env, "LIVEKIT_MEDIA") ?? "process";
  if (v !== "process" && v !== "rtc-node")
    throw new ConfigError("LIVEKIT_MEDIA", "must be process or rtc-node");
  return v;
}

function liveKit(env: Env): LiveKitConfig | undefined {
  const url = envValue(env, "LIVEKIT_URL");
  const apiKey = envValue(env, "LIVEKIT_API_KEY");
  const apiSecret = envValue(env, "LIVEKIT_API_SECRET");
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
  const agentName = envValue(env, "AGENT_NAME");
  const webhook = envValue(env, "AGENT_WEBHOOK_URL");
  if (agentName && webhook)
    throw new ConfigError("AGENT_WEBHOOK_URL", "set AGENT_NAME or AGENT_WEBHOOK_URL, not both");
  if (webhook && !/^https?:\/\//.test(webhook))
    throw new ConfigError("AGENT_WEBHOOK_URL", "must be an http(s):// URL");
  const dispatch: AgentDispatchConfig = agentName
    ? { kind: "agent", agentName }
    : webhook
      ? { kind: "webhook", url: webhook, bearer: envValue(env, "AGENT_WEBHOOK_TOKEN") }
      : { kind: "none" };
  return {
    url: url as string,
    apiKey: apiKey as string,
    apiSecret: apiSecret as string,
    dispatch,
    emptyTimeoutS: envInt(env, "LIVEKIT_EMPTY_TIMEOUT_S", 60, 1, 86_400),
    sweepIntervalMs: envInt(env, "LIVEKIT_SWEEP_INTERVAL_MS", 300_000, 0, 86_400_000),
    greeting: agentGreeting(env),
    media: liveKitMedia(env),
    mediaThreads: envInt(env, "MEDIA_THREADS", 1, 1, 64),
    lateSignalMs: envInt(env, "AGENT_LATE_SIGNAL_MS", LATE_SIGNAL_MS, 100, 60_000),
  };
}

function agentGreeting(env: Env): "agent_ready" | "start_greeting" {
  const v = envValue(env, "AGENT_GREETING") ?? "agent_ready";
  if (v !== "agent_ready" && v !== "start_greeting")
    throw new ConfigError("AGENT_GREETING", "must be agent_ready or start_greeting");
  return v;
}
