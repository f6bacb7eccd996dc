/**
 * Renders the cloud-config user data of both droplets. The one renderer that infra
 * (`pulumi up`, `npm run plan`) and the tests share: what the tests check is what
 * DigitalOcean receives.
 *
 * The static parts (EMQX config and ACL, first-boot scripts, sysctls, the EMQX unit) are
 * files next to this one, shipped byte for byte; this module only adds the values of the
 * stack (secrets, the reserved IP, versions) and where the gateway bundle is: its URL and
 * SHA-256 (bundle.ts; first boot downloads and checks it). How the document and its files
 * are written, and the 64 KiB cap on user data, are in cloud-config.ts.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type EcosystemOptions, renderEcosystem } from "../deploy/ecosystem.ts";
import { INSTALL_DIR, RUNTIME_INSTALL_DIR } from "./bundle.ts";
import { cloudConfig, envFile, type FileSpec } from "./cloud-config.ts";
import { checkDatabaseTls, DATABASE_CA_PATH } from "./database-tls.ts";
import {
  DNS_CREDENTIALS_PATH,
  dnsCredentials,
  hoconString,
  MQTT_CERT_SCRIPT,
  type MqttTls,
  shipped,
  tlsListenerEnv,
} from "./hardening.ts";

export {
  BUNDLE_CACHE_DIR,
  type BundleArtifact,
  type BundleFile,
  type BundleKind,
  bundleObjectKey,
  INSTALL_DIR,
  packBundle,
  readDistBundle,
  readUserDataFiles,
  type StoredBundle,
  storeBundle,
} from "./bundle.ts";
export { assertUserDataFits, envFile, type FileSpec, USER_DATA_LIMIT } from "./cloud-config.ts";
export { DATABASE_CA_PATH } from "./database-tls.ts";
export type { MqttTls } from "./hardening.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const asset = (rel: string): Buffer => readFileSync(path.join(here, rel));

export interface GatewaySecrets {
  readonly mqttPassword: string;
  readonly mqttSigningKey: string;
  readonly emqxDashboardPassword: string;
  readonly livekitApiKey?: string | undefined;
  readonly livekitApiSecret?: string | undefined;
}

/** Where first boot downloads the gateway bundle from, and the hash it must have. */
export interface BundleRef {
  readonly url: string;
  readonly sha256: string;
}

export interface GatewayUserDataInput {
  /** The reserved IP: the UDP address the gateways tell devices. */
  readonly publicHost: string;
  readonly ecosystem: EcosystemOptions;
  readonly bundle: BundleRef;
  readonly emqxImage: string;
  readonly logLevel: string;
  readonly livekitUrl?: string | undefined;
  readonly secrets: GatewaySecrets;
  /** With the stack's MQTT domain: EMQX also serves MQTT over TLS on 8883. */
  readonly mqttTls?: MqttTls | undefined;
}

export interface ApiUserDataInput {
  readonly mqttHost: string;
  /** libpq URL with `sslmode=verify-full&sslrootcert=<DATABASE_CA_PATH>` (infra/database.ts). */
  readonly databaseUrl: string;
  /** The cluster's own CA certificate, PEM (the provider's getDatabaseCa). */
  readonly databaseCa: string;
  readonly mqttSigningKey: string;
  readonly releaseToken?: string | undefined;
  readonly apiRelease: { readonly url: string; readonly sha256: string };
  readonly webRelease: { readonly url: string; readonly sha256: string };
  readonly apiEntry: string;
  readonly apiPort: number;
  readonly apiProxyPaths: readonly string[];
  readonly domain?: string | undefined;
  readonly alertEmail: string;
  /** Node, npm and PM2 (the runtime object bundle-store.ts uploads): URL and SHA-256. */
  readonly nodeRuntime: BundleRef;
  /** The gateway's MQTT domain when it serves TLS: the OTA then hands out `<domain>:8883`. */
  readonly mqttTlsDomain?: string | undefined;
}

/** Root's, 0600, deleted at the end of the API's first boot (api/bootstrap.sh). */
export const RELEASE_AUTH_HEADER = "/etc/voice-fleet/release-auth-header";

const LIB = { path: "/usr/local/lib/voice-fleet/lib.sh", content: shipped("common/lib.sh") };

/** logrotate every hour instead of daily, so that the 50 MB cap of PM2's logs holds within the day. */
const LOGROTATE_HOURLY = {
  path: "/etc/systemd/system/logrotate.timer.d/voice-fleet-hourly.conf",
  content:
    "# Written by cloud-init (cloud-init/render.ts): PM2's logs are capped by size.\n[Timer]\nOnCalendar=\nOnCalendar=hourly\n",
};

/**
 * Login shells (the on-call's ssh) find the node and pm2 of DIR first on PATH: the
 * droplets have no system Node (docs/runbook.md, "How the gateway gets its code").
 */
function nodeOnPath(dir: string): FileSpec {
  return {
    path: "/etc/profile.d/voice-fleet-node.sh",
    content: `# Written by cloud-init (cloud-init/render.ts): node and pm2 come in ${dir}.\nPATH="${dir}/node/bin:${dir}/node_modules/pm2/bin:$PATH"\n`,
  };
}

/**
 * PM2's logs of USER, rotated by the system's logrotate (a PM2 module such as
 * pm2-logrotate would be installed from npm on first boot): at 50 MB, 14 kept, gzip;
 * copytruncate because PM2 keeps its log files open.
 */
export function pm2Logrotate(user: string, home: string): FileSpec {
  return {
    path: "/etc/logrotate.d/voice-fleet-pm2",
    content: [
      "# Written by cloud-init (cloud-init/render.ts). Checked hourly (logrotate.timer drop-in).",
      `${home}/.pm2/logs/*.log ${home}/.pm2/pm2.log {`,
      `    su ${user} ${user}`,
      "    size 50M",
      "    rotate 14",
      "    compress",
      "    missingok",
      "    notifempty",
      "    copytruncate",
      "}",
      "",
    ].join("\n"),
  };
}

export function renderGatewayUserData(input: GatewayUserDataInput): string {
  const s = input.secrets;
  checkBundleRef(input.bundle);
  const gatewayEnv = envFile([
    ["PUBLIC_HOST", input.publicHost],
    // EMQX's loopback listener for the gateways: devices cannot reach it or fill its slots.
    ["MQTT_URL", "mqtt://127.0.0.1:1884"],
    ["MQTT_USERNAME", "gateway"],
    ["MQTT_PASSWORD", s.mqttPassword],
    ["MQTT_SIGNING_KEY", s.mqttSigningKey],
    ["LOG_LEVEL", input.logLevel],
    ["LIVEKIT_URL", input.livekitUrl],
    ["LIVEKIT_API_KEY", s.livekitApiKey],
    ["LIVEKIT_API_SECRET", s.livekitApiSecret],
  ]);
  const settings = envFile(
    [
      ["EMQX_IMAGE", input.emqxImage],
      ["INSTALL_DIR", INSTALL_DIR],
      ["BUNDLE_URL", input.bundle.url],
      ["BUNDLE_SHA256", input.bundle.sha256],
      ["INSTANCES", String(input.ecosystem.instances)],
      ["FIRST_HEALTH_PORT", String(input.ecosystem.firstHealthPort)],
      ["MQTT_DOMAIN", input.mqttTls?.domain],
      ["ALERT_EMAIL", input.mqttTls?.alertEmail],
    ],
    { quote: true },
  );
  const gw = { owner: "gateway:gateway", defer: true };
  const tls = input.mqttTls;
  const files: FileSpec[] = [
    LIB,
    {
      path: "/usr/local/sbin/voice-gateway-bootstrap",
      content: shipped("gateway/bootstrap.sh"),
      permissions: "0755",
    },
    {
      path: "/usr/local/sbin/voice-gateway-fetch-bundle",
      content: shipped("gateway/fetch-bundle.sh"),
      permissions: "0755",
    },
    {
      path: "/usr/local/sbin/voice-fleet-open-devices",
      content: shipped("gateway/open-devices.sh"),
      permissions: "0755",
    },
    {
      path: "/etc/systemd/system/voice-fleet-open-devices.service",
      content: asset("gateway/voice-fleet-open-devices.service"),
    },
    { path: "/etc/voice-gateway/bootstrap.env", content: settings },
    { path: "/etc/voice-gateway/gateway.env", content: gatewayEnv, permissions: "0600", ...gw },
    { path: "/etc/sysctl.d/60-voice-gateway.conf", content: asset("gateway/sysctl.conf") },
    { path: "/etc/security/limits.d/60-voice-gateway.conf", content: asset("gateway/limits.conf") },
    { path: "/etc/systemd/system/emqx.service", content: asset("emqx/emqx.service") },
    { path: "/etc/emqx/emqx.conf", content: shipped("emqx/emqx.conf") },
    { path: "/etc/emqx/acl.conf", content: shipped("emqx/acl.conf") },
    {
      path: "/etc/emqx/auth-built-in-db-bootstrap.csv",
      content: `user_id,password,is_superuser\ngateway,${s.mqttPassword},false\n`,
      owner: "emqx:emqx",
      permissions: "0600",
      defer: true,
    },
    {
      path: "/etc/emqx/emqx.env",
      content: envFile([
        ["EMQX_NODE__NAME", "emqx@127.0.0.1"],
        ["EMQX_DASHBOARD__DEFAULT_PASSWORD", hoconString(s.emqxDashboardPassword)],
        ...tlsListenerEnv(tls),
      ]),
      permissions: "0600",
    },
    ...(tls
      ? [
          { path: "/usr/local/sbin/voice-fleet-mqtt-cert", content: MQTT_CERT_SCRIPT, permissions: "0755" },
          { path: DNS_CREDENTIALS_PATH, content: dnsCredentials(tls), permissions: "0600" },
        ]
      : []),
    pm2Logrotate("gateway", "/home/gateway"),
    LOGROTATE_HOURLY,
    nodeOnPath(INSTALL_DIR),
    // The bundle itself is not here: first boot downloads it (voice-gateway-fetch-bundle).
    { path: `${INSTALL_DIR}/ecosystem.config.cjs`, content: renderEcosystem(input.ecosystem), ...gw },
  ];
  return cloudConfig({
    users: [
      // uid 1000 is the user EMQX runs as inside its image: the host user of that uid
      // owns EMQX's data and secret files, and nobody else gets the uid.
      { name: "emqx", uid: 1000, shell: "/usr/sbin/nologin", lock_passwd: true, no_create_home: true },
      { name: "gateway", uid: 1001, shell: "/bin/bash", lock_passwd: true, homedir: "/home/gateway" },
    ],
    // No compiler, no Node: the bundle carries Node, PM2 and node_modules built elsewhere.
    packages: [
      "docker.io",
      "curl",
      "ca-certificates",
      "nftables",
      "logrotate",
      ...(tls ? ["certbot", "python3-certbot-dns-digitalocean"] : []),
    ],
    files,
    runcmd: [["bash", "/usr/local/sbin/voice-gateway-bootstrap"]],
  });
}

export function renderApiUserData(input: ApiUserDataInput): string {
  const api = { owner: "api:api", defer: true };
  checkBundleRef(input.nodeRuntime);
  checkDatabaseTls(input);
  const settings = envFile(
    [
      ["RUNTIME_URL", input.nodeRuntime.url],
      ["RUNTIME_SHA256", input.nodeRuntime.sha256],
      ["RUNTIME_DIR", RUNTIME_INSTALL_DIR],
      ["API_RELEASE_URL", input.apiRelease.url],
      ["API_RELEASE_SHA256", input.apiRelease.sha256],
      ["WEB_RELEASE_URL", input.webRelease.url],
      ["WEB_RELEASE_SHA256", input.webRelease.sha256],
      ["API_ENTRY", input.apiEntry],
      ["API_PORT", String(input.apiPort)],
      ["DOMAIN", input.domain ?? ""],
      ["ALERT_EMAIL", input.alertEmail],
    ],
    { quote: true },
  );
  // With TLS the OTA hands devices `<domain>:8883`: the firmware then speaks TLS and checks
  // the certificate against the name (docs/droplet.md section 5).
  const mqtt = input.mqttTlsDomain
    ? { host: input.mqttTlsDomain, port: "8883" }
    : { host: input.mqttHost, port: "1883" };
  const apiEnv = envFile([
    ["NODE_ENV", "production"],
    ["PORT", String(input.apiPort)],
    ["DATABASE_URL", input.databaseUrl],
    ["MQTT_HOST", mqtt.host],
    ["MQTT_PORT", mqtt.port],
    ["MQTT_ENDPOINT", `${mqtt.host}:${mqtt.port}`],
    ["MQTT_SIGNING_KEY", input.mqttSigningKey],
  ]);
  const files: FileSpec[] = [
    LIB,
    { path: "/usr/local/sbin/api-bootstrap", content: asset("api/bootstrap.sh"), permissions: "0755" },
    // The gateway's downloader, reused for the runtime object (URL, hash, folder from the env).
    {
      path: "/usr/local/sbin/voice-fleet-fetch-bundle",
      content: shipped("gateway/fetch-bundle.sh"),
      permissions: "0755",
    },
    pm2Logrotate("api", "/home/api"),
    LOGROTATE_HOURLY,
    nodeOnPath(RUNTIME_INSTALL_DIR),
    { path: "/etc/voice-fleet/api-bootstrap.env", content: settings },
    { path: "/etc/manager-api/api.env", content: apiEnv, permissions: "0600", ...api },
    // Not deferred: written in cloud-init's first stage, long before manager-api starts.
    { path: DATABASE_CA_PATH, content: input.databaseCa },
    { path: "/etc/nginx/sites-available/manager", content: nginxSite(input) },
  ];
  if (input.releaseToken) {
    // A whole header line, read by `curl -H @file`: the token never is on a command line
    // (/proc/<pid>/cmdline is readable by every user) nor in a log line.
    if (/[\s\0]/.test(input.releaseToken)) throw new Error("releaseToken: holds whitespace");
    files.push({
      path: RELEASE_AUTH_HEADER,
      content: `Authorization: Bearer ${input.releaseToken}\n`,
      permissions: "0600",
    });
  }
  // build-essential and python3: manager-api's own `npm ci` may build native addons (against
  // the runtime object's headers). Node itself comes from the runtime object.
  const packages = [
    "nginx",
    "build-essential",
    "python3",
    "curl",
    "ca-certificates",
    "nftables",
    "logrotate",
  ];
  if (input.domain) packages.push("certbot", "python3-certbot-nginx");
  return cloudConfig({
    users: [{ name: "api", shell: "/bin/bash", lock_passwd: true, homedir: "/home/api" }],
    packages,
    files,
    runcmd: [["bash", "/usr/local/sbin/api-bootstrap"]],
  });
}

/** nginx: manager-web's static build, the API paths proxied to manager-api. */
export function nginxSite(input: Pick<ApiUserDataInput, "apiPort" | "apiProxyPaths" | "domain">): string {
  const proxies = input.apiProxyPaths.map((p) =>
    [
      `    location ${p} {`,
      `        proxy_pass http://127.0.0.1:${input.apiPort};`,
      "        proxy_http_version 1.1;",
      "        proxy_set_header Host $host;",
      "        proxy_set_header X-Real-IP $remote_addr;",
      "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
      "        proxy_set_header X-Forwarded-Proto $scheme;",
      "        proxy_read_timeout 60s;",
      "    }",
    ].join("\n"),
  );
  return [
    "# Written by cloud-init (cloud-init/render.ts). certbot adds TLS here when a domain is set.",
    "server {",
    "    listen 80 default_server;",
    "    listen [::]:80 default_server;",
    `    server_name ${input.domain ?? "_"};`,
    "    root /var/www/manager-web;",
    "    index index.html;",
    "    client_max_body_size 10m;",
    "",
    ...proxies,
    "",
    "    location / {",
    "        try_files $uri $uri/ /index.html;",
    "    }",
    "}",
    "",
  ].join("\n");
}

/** The URL goes into a single-quoted env file and to curl; the hash is what sha256sum prints. */
function checkBundleRef(b: BundleRef): void {
  if (!/^[0-9a-f]{64}$/.test(b.sha256))
    throw new Error(`bundle: ${JSON.stringify(b.sha256)} is not a SHA-256`);
  if (!/^https:\/\/[A-Za-z0-9._~:/?#@!$&()*+,;=%-]+$/.test(b.url) || b.url.includes("'")) {
    throw new Error(`bundle: ${JSON.stringify(b.url)} is not a plain https URL`);
  }
}
