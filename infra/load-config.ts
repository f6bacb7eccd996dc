/** The Pulumi adapter: reads the stack's config; secrets stay Outputs marked secret. */
import * as pulumi from "@pulumi/pulumi";
import { type ParseOptions, PROJECT, parseSettings, type Settings } from "./config.ts";
import { checkSecret, checkSecretPresence, SECRET_SPECS, type Secrets } from "./secrets.ts";

export interface StackConfig {
  readonly settings: Settings;
  readonly secrets: Secrets;
}

export function loadStackConfig(options: ParseOptions = {}): StackConfig {
  const config = new pulumi.Config(PROJECT);
  const secretKeys = new Set<string>(SECRET_SPECS.map((s) => s.key));
  const presentKeys = Object.keys(pulumi.runtime.allConfig())
    .filter((k) => k.startsWith(`${PROJECT}:`))
    .map((k) => k.slice(PROJECT.length + 1))
    .filter((k) => !secretKeys.has(k));
  const settings = parseSettings((key) => (secretKeys.has(key) ? undefined : config.get(key)), {
    ...options,
    presentKeys,
  });
  const present = new Set<keyof Secrets>();
  const secrets: Partial<Record<keyof Secrets, pulumi.Output<string>>> = {};
  for (const spec of SECRET_SPECS) {
    const value = config.getSecret(spec.key);
    if (value === undefined) continue;
    present.add(spec.key);
    secrets[spec.key] = value.apply((v) => checkSecret(spec, v));
  }
  checkSecretPresence(settings, present);
  const required = (key: keyof Secrets): pulumi.Output<string> => secrets[key] as pulumi.Output<string>;
  return {
    settings,
    secrets: {
      mqttSigningKey: required("mqttSigningKey"),
      gatewayMqttPassword: required("gatewayMqttPassword"),
      emqxDashboardPassword: required("emqxDashboardPassword"),
      livekitApiKey: secrets.livekitApiKey,
      livekitApiSecret: secrets.livekitApiSecret,
      releaseToken: secrets.releaseToken,
      mqttDnsToken: secrets.mqttDnsToken,
    },
  };
}
