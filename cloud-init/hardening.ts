/**
 * What the droplets' user data adds for their safety and the order of their first boot,
 * kept apart from render.ts (which lays out files) so each rule has one home:
 *   - the guard (common/guard.sh): run by cloud-init's `bootcmd` on every boot, before any
 *     file is written or package installed: only root reaches the metadata service, and
 *     MQTT is shut to the outside until the device gate opens;
 *   - HOCON quoting of the values EMQX reads from its environment;
 *   - MQTT over TLS (8883) when the stack has an MQTT domain.
 * Pure: text in, text out.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const asset = (rel: string): Buffer => readFileSync(path.join(here, rel));

/** Where first boot finds the guard again (and `guard.sh open` opens the device gate). */
export const GUARD_PATH = "/usr/local/lib/voice-fleet/guard.sh";
export const GUARD_SCRIPT = asset("common/guard.sh").toString("utf8");

/**
 * cloud-init `bootcmd`: runs on every boot, before write_files and packages. It writes the
 * guard to GUARD_PATH (for first boot's reload and the gate) and runs it. The script goes
 * without its comment lines: user data is counted in bytes, and they live in the repository.
 */
export function guardBootcmd(): string[][] {
  const lines = GUARD_SCRIPT.split("\n").filter((l) => !/^\s*#/.test(l) && l.trim() !== "");
  if (lines.some((l) => l.includes("GUARD_EOF"))) throw new Error("guard.sh may not contain GUARD_EOF");
  const write = `mkdir -p ${path.posix.dirname(GUARD_PATH)}\ncat >${GUARD_PATH} <<'GUARD_EOF'\n${lines.join("\n")}\nGUARD_EOF\n`;
  return [["sh", "-c", `${write}sh ${GUARD_PATH}\n`]];
}

/**
 * A value as a quoted HOCON string. EMQX parses every `EMQX_*` variable as HOCON
 * (hocon_tconf:parse_env boxes it as `fake_key=<value>`), so an unquoted `//` or `#` starts
 * a comment and the rest is silently dropped (`Kq2Wm5//xyz` became `Kq2Wm5` with hocon
 * 0.44.0, the version EMQX 5.8.9 pins). Inside quotes hocon 0.44.0 unescapes `\\` and `\"`
 * only (`\u0041` and `\/` stay as written), so those two are the only escapes used, and
 * anything but printable ASCII is refused.
 */
export function hoconString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) {
    throw new Error("HOCON string: only printable ASCII characters may be passed to EMQX this way");
  }
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Reads back what hoconString wrote, by hocon 0.44.0's quoted-string rule (for tests). */
export function readHoconString(quoted: string): string {
  const m = /^"((?:[^"\\]|\\[\\"])*)"$/.exec(quoted);
  if (!m) throw new Error(`not a quoted HOCON string: ${quoted}`);
  return (m[1] ?? "").replace(/\\([\\"])/g, "$1");
}

/** MQTT over TLS for devices, with a Let's Encrypt certificate through DNS-01. */
export interface MqttTls {
  /** The DNS name devices connect to (an A record at the reserved IP), e.g. mqtt.example.net. */
  readonly domain: string;
  /** Let's Encrypt account address (expiry warnings). */
  readonly alertEmail: string;
  /** DigitalOcean API token scoped to the domain's records (DNS-01 TXT records). */
  readonly dnsToken: string;
  /** Keep plain MQTT on 1883 open too (devices not yet told `host:8883`). */
  readonly keepPlainPort: boolean;
}

/** Comment-only lines of each kind of file cloud-init ships, and how its header comment starts. */
const COMMENTS: Record<string, { line: RegExp; mark: string }> = {
  ".sh": { line: /^\s*#(?!!)/, mark: "#" },
  ".conf": { line: /^\s*(##|%%)/, mark: "##" },
};

/**
 * A script or config as shipped in user data: without its comment-only and blank lines,
 * and a first line naming the file in the repository where the comments are. User data
 * is counted in bytes, and these files are most of it. Only files whose comments are
 * whole lines outside heredocs and strings (ours) go through here; acl.conf's comments
 * are `%%`, EMQX's `##`, shell's `#` (the shebang stays first).
 */
export function shipped(rel: string): string {
  const ext = path.extname(rel);
  const kind = COMMENTS[ext];
  if (!kind) throw new Error(`no comment rule for ${rel}`);
  const mark = rel.endsWith("acl.conf") ? "%%" : kind.mark;
  const lines = asset(rel).toString("utf8").split("\n");
  const shebang = lines[0]?.startsWith("#!") ? [lines.shift() as string] : [];
  const body = lines.filter((l) => !kind.line.test(l) && l.trim() !== "");
  return [...shebang, `${mark} cloud-init/${rel} of voice-fleet; its comments are there`, ...body, ""].join(
    "\n",
  );
}

export const MQTT_CERT_SCRIPT = shipped("gateway/mqtt-cert.sh");
export const DNS_CREDENTIALS_PATH = "/etc/letsencrypt/digitalocean.ini";

/** certbot-dns-digitalocean's credentials file (root 0600: certbot runs as root). */
export function dnsCredentials(tls: MqttTls): string {
  if (!/^[\x21-\x7e]+$/.test(tls.dnsToken))
    throw new Error("the DigitalOcean DNS token holds a character it may not");
  return `# DigitalOcean API token for DNS-01 (domain records only)\ndns_digitalocean_token = ${tls.dnsToken}\n`;
}

/** EMQX environment lines for the listeners the TLS settings switch. */
export function tlsListenerEnv(tls: MqttTls | undefined): [string, string][] {
  if (!tls) return [];
  const env: [string, string][] = [["EMQX_LISTENERS__SSL__DEFAULT__ENABLE", "true"]];
  if (!tls.keepPlainPort) env.push(["EMQX_LISTENERS__TCP__DEFAULT__ENABLE", "false"]);
  return env;
}
