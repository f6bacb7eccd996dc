/** The Pulumi adapter: reads the stack's config and checks all of it at once; secrets go on as secret Outputs. */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, type ParseOptions, PROJECT, parseSettings, type Settings } from "./config.ts";
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
  // Every problem, settings' and secrets', is collected before anything is registered: a
  // secret checked inside an apply failed only once resources that do not depend on it
  // (VPC, firewalls, reserved IPs) were on their way, and under `pulumi up --skip-preview`
  // created. Values are read once here and handed on as secret Outputs.
  const problems: string[] = [];
  const collect = (check: () => void): void => {
    try {
      check();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  };
  let settings: Settings | undefined;
  collect(() => {
    settings = parseSettings((key) => (secretKeys.has(key) ? undefined : config.get(key)), {
      ...options,
      presentKeys,
    });
  });
  const present = new Set<keyof Secrets>();
  const secrets: Partial<Record<keyof Secrets, pulumi.Output<string>>> = {};
  for (const spec of SECRET_SPECS) {
    const value = pulumi.runtime.getConfig(`${PROJECT}:${spec.key}`);
    if (value === undefined) continue;
    present.add(spec.key);
    collect(() => checkSecret(spec, value));
    secrets[spec.key] = pulumi.secret(value);
  }
  const parsed = settings;
  if (parsed) collect(() => checkSecretPresence(parsed, present));
  if (problems.length > 0 || !parsed) throw new ConfigError(problems);
  const required = (key: keyof Secrets): pulumi.Output<string> => secrets[key] as pulumi.Output<string>;
  return {
    settings: parsed,
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
