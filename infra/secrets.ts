/**
 * The stack's secrets: which exist, how each is checked, how to generate it. Pure; values
 * never appear in a message.
 */
import type * as pulumi from "@pulumi/pulumi";
import { ConfigError, PROJECT, type Settings } from "./config.ts";

/** The secrets, each only ever handled as a Pulumi secret Output. */
export interface Secrets {
  readonly mqttSigningKey: pulumi.Output<string>;
  readonly gatewayMqttPassword: pulumi.Output<string>;
  readonly emqxDashboardPassword: pulumi.Output<string>;
  readonly livekitApiKey: pulumi.Output<string> | undefined;
  readonly livekitApiSecret: pulumi.Output<string> | undefined;
  readonly releaseToken: pulumi.Output<string> | undefined;
  /** DigitalOcean token for the MQTT certificate's DNS-01 (with mqttDomain only). */
  readonly mqttDnsToken: pulumi.Output<string> | undefined;
}

export interface SecretSpec {
  readonly key: keyof Secrets;
  readonly required: boolean;
  readonly minLength: number;
  /**
   * Characters allowed; every secret also lands in env files and one in a CSV line. Those
   * in gateway.env (unquoted, read by Node's util.parseEnv) are TOKEN: `#` would start a
   * comment there and a leading quote would make the rest a quoted value, cutting it short.
   */
  readonly pattern: RegExp;
  readonly describe: string;
  /** What the README suggests to generate it. */
  readonly generate: string;
}

/** The user-data size check renders stand-ins of this length for every secret. */
export const MAX_SECRET_LENGTH = 128;

const TOKEN = /^[A-Za-z0-9._~+/=-]+$/;
const PRINTABLE = /^[\x21-\x7e]+$/;

export const SECRET_SPECS: readonly SecretSpec[] = [
  {
    key: "mqttSigningKey",
    required: true,
    minLength: 32,
    pattern: TOKEN,
    describe: "HMAC key the OTA signs device MQTT passwords with; the device verifier checks them",
    generate: "the key the OTA signs with; for a new OTA: openssl rand -hex 32",
  },
  {
    key: "gatewayMqttPassword",
    required: true,
    minLength: 24,
    pattern: TOKEN,
    describe: "password of MQTT user `gateway` (EMQX built-in database and the gateways' env file)",
    generate: "openssl rand -hex 24",
  },
  {
    key: "emqxDashboardPassword",
    required: true,
    minLength: 16,
    pattern: PRINTABLE,
    describe: "EMQX dashboard `admin` password (dashboard is private: VPC or SSH tunnel)",
    generate: "openssl rand -base64 24",
  },
  {
    key: "livekitApiKey",
    required: false,
    minLength: 4,
    pattern: TOKEN,
    describe: "LiveKit Cloud API key (optional: without it the gateways run the echo agent)",
    generate: "from the LiveKit Cloud project settings",
  },
  {
    key: "livekitApiSecret",
    required: false,
    minLength: 8,
    pattern: TOKEN,
    describe: "LiveKit Cloud API secret (with livekitApiKey)",
    generate: "from the LiveKit Cloud project settings",
  },
  {
    key: "releaseToken",
    required: false,
    minLength: 8,
    pattern: PRINTABLE,
    describe: "bearer token for downloading private manager-api / manager-web release artifacts",
    generate: "a read-only token of the release host (e.g. a fine-grained GitHub token)",
  },
  {
    key: "mqttDnsToken",
    required: false,
    minLength: 16,
    pattern: TOKEN,
    describe: "DigitalOcean API token for the MQTT certificate (DNS-01 TXT records of mqttDomain's zone)",
    generate: "a custom-scoped DigitalOcean token with only the domain scopes (read, create, update, delete)",
  },
];

/** Checks one secret's value; returns it unchanged. Never puts the value in a message. */
export function checkSecret(spec: SecretSpec, value: string): string {
  const key = `${PROJECT}:${spec.key}`;
  if (value.length < spec.minLength) {
    throw new ConfigError([`${key}: too short (at least ${spec.minLength} characters; ${spec.generate})`]);
  }
  if (value.length > MAX_SECRET_LENGTH) {
    throw new ConfigError([`${key}: too long (at most ${MAX_SECRET_LENGTH} characters)`]);
  }
  if (!spec.pattern.test(value)) {
    throw new ConfigError([`${key}: contains characters it may not hold (allowed: ${spec.pattern.source})`]);
  }
  return value;
}

/** Cross-checks that need both settings and which secrets are set. */
export function checkSecretPresence(settings: Settings, present: ReadonlySet<keyof Secrets>): void {
  const problems: string[] = [];
  for (const spec of SECRET_SPECS) {
    if (spec.required && !present.has(spec.key)) {
      problems.push(
        `${PROJECT}:${spec.key}: missing secret, the ${spec.describe}: ` +
          `pulumi config set --secret ${spec.key} <value> (${spec.generate})`,
      );
    }
  }
  const hasKey = present.has("livekitApiKey");
  if (hasKey !== present.has("livekitApiSecret")) {
    problems.push(`${PROJECT}:livekitApiKey/livekitApiSecret: set both or neither`);
  }
  if (hasKey !== (settings.livekitUrl !== undefined)) {
    problems.push(`${PROJECT}:livekitUrl: set it together with the LiveKit key and secret, or none of them`);
  }
  if (present.has("mqttDnsToken") !== (settings.mqttDomain !== undefined)) {
    problems.push(
      `${PROJECT}:mqttDnsToken: set it together with mqttDomain (the certificate for MQTT over TLS), or neither`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
