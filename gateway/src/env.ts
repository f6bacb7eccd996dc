/**
 * Reading the environment, for every process of the gateway bundle (the gateways in
 * config.ts, the device verifier in auth/verifier-config.ts): the env file under the
 * process environment, and the typed readers that name the variable when a value is bad.
 * One reader so the two processes cannot disagree about what a value means.
 */
import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";

export type Env = Readonly<Record<string, string | undefined>>;

/** A bad or missing setting; the process prints it and exits 2. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

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

function stripUndefined(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** The trimmed value; unset and blank are the same (an empty line in the env file). */
export function envValue(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

export function envString(env: Env, name: string, fallback: string): string {
  return envValue(env, name) ?? fallback;
}

export function envRequired(env: Env, name: string): string {
  const v = envValue(env, name);
  if (v === undefined) throw new ConfigError(name, "is required and not set");
  return v;
}

/**
 * Decimal digits only: no sign, no exponent, no hex. Every integer setting of both
 * processes is a count, a port or a duration (none below 0), so a sign is a mistake and
 * said so rather than read.
 */
export function envInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = envValue(env, name);
  if (v === undefined) return fallback;
  if (!/^[0-9]+$/.test(v)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be in ${min}..${max}, got ${n}`);
  return n;
}

export function envOneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const v = envValue(env, name);
  if (v === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(name, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}
