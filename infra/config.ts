/**
 * The stack's settings, typed and validated once at the edge. Pure: the Pulumi adapter
 * is load-config.ts, the secrets' rules are secrets.ts.
 *
 * Every problem names the key it comes from, as `voice-fleet:<key>`, so the on-call
 * engineer knows which `pulumi config set` fixes it.
 */
import { DEFAULT_ECOSYSTEM } from "../deploy/ecosystem.ts";
import { isPlaceholderCidr, networkText, parseCidr } from "./cidr.ts";
import { sizeProblem } from "./droplet-sizes.ts";
import { parseTrustedSource } from "./trusted-sources.ts";
import { vpcRangeProblem } from "./vpc-range.ts";

export const PROJECT = "voice-fleet";

export interface ApiRelease {
  /** HTTPS URL of a .tar.gz release artifact. */
  readonly url: string;
  /** Its SHA-256, checked on the box before anything is unpacked. */
  readonly sha256: string;
}

export interface Settings {
  readonly region: string;
  readonly vpcIpRange: string;
  readonly image: string;
  readonly gatewaySize: string;
  readonly apiSize: string;
  readonly gatewayInstances: number;
  readonly workersPerInstance: number;
  readonly firstUdpPort: number;
  readonly firstHealthPort: number;
  /** Gateway droplets that exist (blue/green rotation); the reserved IP is on `gatewayActiveSlot`. */
  readonly gatewaySlots: readonly string[];
  readonly gatewayActiveSlot: string;
  /** Slots whose droplet keeps its user data, size, SSH keys and image (ignoreChanges): serving while another slot rolls. */
  readonly gatewayPinnedSlots: readonly string[];
  /** How long `pulumi up` waits for a new gateway droplet to open its device listener before moving the reserved IP; 0: no wait. */
  readonly gatewayReadyTimeoutMinutes: number;
  /** Spaces bucket for the gateway bundle (unique across DigitalOcean); default `voice-fleet-<stack>-bundles`. */
  readonly bundleBucket: string | undefined;
  readonly adminCidrs: readonly string[];
  readonly sshKeyFingerprints: readonly string[];
  readonly databaseClusterName: string;
  /** Database and user the API connects as; the cluster's defaults when unset. */
  readonly databaseName: string | undefined;
  readonly databaseUser: string | undefined;
  /** Trusted sources to keep besides the API droplet (`type:value`, as doctl writes them). */
  readonly databaseTrustedSources: readonly { readonly type: string; readonly value: string }[];
  readonly alertEmail: string;
  readonly domain: string | undefined;
  /** DNS name of the reserved IP for MQTT over TLS (8883); unset: plain MQTT only. */
  readonly mqttDomain: string | undefined;
  /** Plain MQTT on 1883 stays open (devices not yet told `<mqttDomain>:8883`). */
  readonly mqttPlainPort: boolean;
  /**
   * The API's OTA hands devices `<mqttDomain>:8883` instead of `<reserved IP>:1883`. Off by
   * default: the operator turns it on in a later `up`, once `openssl s_client` showed the
   * gateway's certificate (docs/droplet.md section 5), never in the `up` that creates it.
   */
  readonly otaMqttTls: boolean;
  readonly emqxImage: string;
  readonly livekitUrl: string | undefined;
  readonly logLevel: string;
  readonly apiRelease: ApiRelease;
  readonly webRelease: ApiRelease;
  readonly apiPort: number;
  readonly apiEntry: string;
  readonly apiProxyPaths: readonly string[];
  readonly projectName: string;
  /** Keys whose values are documentation placeholders (only `npm run plan` accepts them). */
  readonly placeholders: readonly string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid stack configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** Raw config as Pulumi stores it: strings, structured values as JSON text. */
export type RawConfig = (key: string) => string | undefined;

export interface ParseOptions {
  /** Accept documentation placeholders (TEST-NET CIDRs, example.com): `npm run plan` only. */
  readonly allowPlaceholders?: boolean;
  /**
   * The stack's keys of this project, secrets left out: any of them that is not read here is
   * refused, since a misspelt key (`gatewayPinnedSlot`) would otherwise be dropped unseen.
   */
  readonly presentKeys?: readonly string[];
}

const SLUG = /^[a-z0-9][a-z0-9-]*$/;
const REGION = /^[a-z]{3}[0-9]$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const FINGERPRINT = /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const PLACEHOLDER_HOST = /(^|\.)example\.(com|org|net)$/;
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

export function parseSettings(rawConfig: RawConfig, options: ParseOptions = {}): Settings {
  const read = new Set<string>();
  const raw: RawConfig = (key) => {
    read.add(key);
    return rawConfig(key);
  };
  const problems: string[] = [];
  const placeholders: string[] = [];
  const fail = (key: string, problem: string): undefined => {
    problems.push(`${PROJECT}:${key}: ${problem}`);
    return undefined;
  };
  const str = (key: string, fallback?: string): string | undefined => {
    const v = raw(key)?.trim();
    if (v) return v;
    if (fallback !== undefined) return fallback;
    return fail(key, `missing (pulumi config set ${key} <value>)`);
  };
  const optional = (key: string): string | undefined => raw(key)?.trim() || undefined;
  const matching = (key: string, re: RegExp, what: string, fallback?: string): string => {
    const v = str(key, fallback);
    if (v !== undefined && !re.test(v)) fail(key, `must be ${what}, got ${JSON.stringify(v)}`);
    return v ?? "";
  };
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const text = raw(key)?.trim();
    // Decimal digits only: Number() would read "0x10" as 16 and "1e1" as 10.
    const v = text ? (/^[0-9]+$/.test(text) ? Number(text) : Number.NaN) : fallback;
    if (!Number.isInteger(v) || v < min || v > max) {
      fail(key, `must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
      return fallback;
    }
    return v;
  };
  const list = (key: string, fallback?: string[]): string[] => {
    const text = raw(key)?.trim();
    if (!text) {
      if (fallback) return fallback;
      fail(key, "missing (a YAML list in Pulumi.<stack>.yaml)");
      return [];
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text.split(",").map((s) => s.trim());
    }
    if (!Array.isArray(value) || value.some((x) => typeof x !== "string" || x.trim() === "")) {
      fail(key, "must be a list of non-empty strings");
      return [];
    }
    return value.map((x: string) => x.trim());
  };
  /** A list that may not be empty: `[]` is refused naming the key (a missing key falls back). */
  const nonEmptyList = (key: string, why: string, fallback?: string[]): string[] => {
    const value = list(key, fallback);
    const reported = problems.some((p) => p.startsWith(`${PROJECT}:${key}: `));
    if (value.length === 0 && !reported) fail(key, `must list at least one: ${why}`);
    return value;
  };
  const placeholder = (key: string): void => {
    if (!placeholders.includes(key)) placeholders.push(key);
  };
  const httpsUrl = (key: string): string => {
    const v = str(key) ?? "";
    if (!v) return v;
    try {
      const u = new URL(v);
      if (u.protocol !== "https:") fail(key, "must be an https:// URL");
      if (PLACEHOLDER_HOST.test(u.hostname)) placeholder(key);
    } catch {
      fail(key, `must be a URL, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const release = (prefix: "api" | "web"): ApiRelease => {
    const key = `${prefix}ReleaseSha256`;
    const sha256 = matching(key, SHA256, "a lowercase hex SHA-256 (sha256sum <artifact>)");
    if (/^0+$/.test(sha256)) placeholder(key);
    return { url: httpsUrl(`${prefix}ReleaseUrl`), sha256 };
  };

  const region = matching("region", REGION, "a DigitalOcean region slug such as fra1");
  const vpcIpRange = str("vpcIpRange") ?? "";
  const vpcProblem = vpcIpRange ? vpcRangeProblem(vpcIpRange, region) : undefined;
  if (vpcProblem) fail("vpcIpRange", vpcProblem);
  const gatewayInstances = int("gatewayInstances", DEFAULT_ECOSYSTEM.instances, 1, 16);
  const firstUdpPort = int(
    "firstUdpPort",
    DEFAULT_ECOSYSTEM.firstUdpPort,
    1024,
    65535 - gatewayInstances + 1,
  );
  const gatewaySlots = nonEmptyList("gatewaySlots", "the gateway droplets, one of them active", ["a"]);
  for (const slot of gatewaySlots) {
    if (!/^[a-z0-9]{1,8}$/.test(slot))
      fail("gatewaySlots", `slot ${JSON.stringify(slot)} must be 1-8 of [a-z0-9]`);
  }
  if (new Set(gatewaySlots).size !== gatewaySlots.length) fail("gatewaySlots", "slots must be unique");
  const gatewayActiveSlot = str("gatewayActiveSlot", gatewaySlots[0] ?? "a") ?? "";
  if (gatewaySlots.length > 0 && !gatewaySlots.includes(gatewayActiveSlot)) {
    fail("gatewayActiveSlot", `must be one of gatewaySlots (${gatewaySlots.join(", ")})`);
  }
  const gatewayPinnedSlots = list("gatewayPinnedSlots", []);
  for (const slot of gatewayPinnedSlots) {
    if (!gatewaySlots.includes(slot))
      fail("gatewayPinnedSlots", `${JSON.stringify(slot)} is not in gatewaySlots`);
  }
  const adminCidrs = list("adminCidrs");
  for (const c of adminCidrs) {
    const cidr = parseCidr(c);
    if (!cidr) fail("adminCidrs", `${JSON.stringify(c)} is not a CIDR (use a.b.c.d/32 for one address)`);
    else if (cidr.prefix === 0) fail("adminCidrs", `${c} would open SSH to the whole internet`);
    else if (isPlaceholderCidr(cidr)) placeholder("adminCidrs");
    else if (cidr.family === 4 && networkText(cidr) !== c) {
      // 81.2.69.5/24 is most often one address written with the office's prefix: read as
      // a range it opens SSH to 256 addresses, so say which was meant instead of guessing.
      const [addr] = c.split("/");
      fail(
        "adminCidrs",
        networkText(cidr).split("/")[0] === addr
          ? `write ${c} as ${networkText(cidr)}`
          : `${c} has host bits set: did you mean ${addr}/32 (that one address) or ${networkText(cidr)} (the whole range)?`,
      );
    }
  }
  if (adminCidrs.length === 0 && raw("adminCidrs")) fail("adminCidrs", "must list at least one CIDR");
  const sshKeyFingerprints = nonEmptyList(
    "sshKeyFingerprints",
    "password login is off, so without a key no one can ssh into the droplets",
  );
  for (const f of sshKeyFingerprints) {
    if (!FINGERPRINT.test(f) && !/^[0-9]+$/.test(f)) {
      fail(
        "sshKeyFingerprints",
        `${JSON.stringify(f)} is neither an MD5 fingerprint (aa:bb:...) nor a key id`,
      );
    } else if (/^(00:){15}00$/.test(f)) placeholder("sshKeyFingerprints");
  }
  const alertEmail = matching("alertEmail", EMAIL, "an email address");
  if (PLACEHOLDER_HOST.test(alertEmail.split("@")[1] ?? "")) placeholder("alertEmail");
  const domain = optional("domain");
  if (domain && !/^([a-z0-9-]+\.)+[a-z]{2,}$/.test(domain)) fail("domain", `not a host name: ${domain}`);
  if (domain && PLACEHOLDER_HOST.test(domain)) placeholder("domain");
  const mqttDomain = optional("mqttDomain");
  if (mqttDomain && !/^([a-z0-9-]+\.)+[a-z]{2,}$/.test(mqttDomain)) {
    fail("mqttDomain", `not a host name: ${mqttDomain}`);
  }
  if (mqttDomain && PLACEHOLDER_HOST.test(mqttDomain)) placeholder("mqttDomain");
  // domain's A record is the API's reserved IP, mqttDomain's the gateway's: one name cannot be both.
  if (mqttDomain && mqttDomain === domain) {
    fail(
      "mqttDomain",
      "must differ from domain: domain points at the API's reserved IP, mqttDomain at the gateway's",
    );
  }
  const plainText = optional("mqttPlainPort");
  if (plainText !== undefined && plainText !== "true" && plainText !== "false") {
    fail("mqttPlainPort", `must be true or false, got ${JSON.stringify(plainText)}`);
  }
  const mqttPlainPort = plainText !== "false";
  if (!mqttPlainPort && !mqttDomain) {
    fail("mqttPlainPort", "false closes plain MQTT: set mqttDomain first, so devices have TLS on 8883");
  }
  const otaTlsText = optional("otaMqttTls");
  if (otaTlsText !== undefined && otaTlsText !== "true" && otaTlsText !== "false") {
    fail("otaMqttTls", `must be true or false, got ${JSON.stringify(otaTlsText)}`);
  }
  const otaMqttTls = otaTlsText === "true";
  if (otaMqttTls && !mqttDomain) {
    fail(
      "otaMqttTls",
      "true hands devices <mqttDomain>:8883: set mqttDomain first (and check its certificate)",
    );
  }
  if (!mqttPlainPort && mqttDomain && !otaMqttTls) {
    fail(
      "mqttPlainPort",
      "false closes 1883, which the OTA still hands out: set otaMqttTls true first (after the openssl s_client check)",
    );
  }
  const emqxImage = matching(
    "emqxImage",
    /^[a-z0-9./-]+:[0-9][A-Za-z0-9._-]*$/,
    "an image with a pinned version tag",
    "emqx/emqx:5.8.9",
  );
  const bundleBucket = optional("bundleBucket");
  if (bundleBucket && !/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bundleBucket)) {
    fail("bundleBucket", `must be 3-63 of [a-z0-9-], got ${JSON.stringify(bundleBucket)}`);
  }
  const livekitUrl = optional("livekitUrl");
  if (livekitUrl) {
    const problem = livekitUrlProblem(livekitUrl);
    if (problem) fail("livekitUrl", `${problem}, got ${JSON.stringify(livekitUrl)}`);
  }
  const databaseTrustedSources = list("databaseTrustedSources", []).flatMap((entry) => {
    const source = parseTrustedSource(entry);
    if (typeof source === "string") fail("databaseTrustedSources", `${JSON.stringify(entry)}: ${source}`);
    return typeof source === "string" ? [] : [source];
  });
  const apiProxyPaths = list("apiProxyPaths", ["/toy/", "/api/"]);
  for (const p of apiProxyPaths) {
    if (!/^\/[A-Za-z0-9._/-]*\/$/.test(p))
      fail("apiProxyPaths", `${JSON.stringify(p)} must start and end with /`);
  }
  // Each is an nginx location: a duplicate fails `nginx -t`, and with it the API's first boot.
  if (new Set(apiProxyPaths).size !== apiProxyPaths.length) {
    fail("apiProxyPaths", "paths must be unique (nginx refuses a duplicate location)");
  }

  const size = (key: "gatewaySize" | "apiSize"): string => {
    const v = matching(key, SLUG, "a droplet size slug");
    const problem = v ? sizeProblem(v) : undefined;
    if (problem) fail(key, problem);
    return v;
  };

  const settings: Settings = {
    region,
    vpcIpRange,
    image: matching("image", SLUG, "an image slug", "ubuntu-24-04-x64"),
    gatewaySize: size("gatewaySize"),
    apiSize: size("apiSize"),
    gatewayInstances,
    workersPerInstance: int("workersPerInstance", DEFAULT_ECOSYSTEM.workersPerInstance, 1, 64),
    firstUdpPort,
    firstHealthPort: DEFAULT_ECOSYSTEM.firstHealthPort,
    gatewaySlots,
    gatewayActiveSlot,
    gatewayPinnedSlots,
    gatewayReadyTimeoutMinutes: int("gatewayReadyTimeoutMinutes", 20, 0, 120),
    bundleBucket,
    adminCidrs,
    sshKeyFingerprints,
    databaseClusterName: str("databaseClusterName") ?? "",
    databaseName: optional("databaseName"),
    databaseUser: optional("databaseUser"),
    databaseTrustedSources,
    alertEmail,
    domain,
    mqttDomain,
    mqttPlainPort,
    otaMqttTls,
    emqxImage,
    livekitUrl,
    logLevel: matching("logLevel", new RegExp(`^(${LOG_LEVELS.join("|")})$`), LOG_LEVELS.join(" | "), "info"),
    apiRelease: release("api"),
    webRelease: release("web"),
    apiPort: int("apiPort", 8002, 1024, 65535),
    apiEntry: matching(
      "apiEntry",
      /^[A-Za-z0-9._/-]+\.(c|m)?js$/,
      "a .js path inside the release",
      "index.js",
    ),
    apiProxyPaths,
    projectName: matching("projectName", /^[A-Za-z0-9 _.-]{1,64}$/, "a project name", "voice-fleet"),
    placeholders,
  };
  for (const key of options.presentKeys ?? []) {
    if (!read.has(key)) {
      fail(
        key,
        'is not a setting of this stack (misspelt?): the settings are in docs/runbook.md, "1. Settings"',
      );
    }
  }
  if (placeholders.length > 0 && !options.allowPlaceholders) {
    for (const key of placeholders) fail(key, "still holds a documentation placeholder: set the real value");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return settings;
}

/**
 * livekitUrl: TLS signalling (the LiveKit token travels in it) on port 443, the only port the
 * gateway's outbound firewall opens for it (firewall-rules.ts), and nothing that gateway.env
 * (unquoted, read by util.parseEnv) would cut short: no `#`, quotes or whitespace.
 */
export function livekitUrlProblem(v: string): string | undefined {
  if (/[\s#"'`\\]/.test(v)) return "must be a wss:// URL without spaces, quotes, backslashes or #";
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return "must be a wss:// URL";
  }
  if (u.protocol !== "wss:") return "must be a wss:// URL (TLS: the LiveKit token travels in it)";
  if (u.port !== "") {
    return "must use port 443 (leave the port out): the gateway's firewall lets LiveKit signalling out on TCP 443 only";
  }
  if (u.username || u.password) return "must not hold a user name or password";
  return undefined;
}
