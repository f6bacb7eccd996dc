/**
 * `npm run plan [-- --stack prod]`: what `pulumi up` would create, without a cloud account.
 * Runs the real program under Pulumi's mocks with the stack's settings file and prints
 * every resource with its key settings, the firewall rules, the gateway instances and
 * the user-data sizes: a preview the on-call can review before touching the cloud.
 * Secrets are never read here (stand-ins of realistic length are used).
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { storeGatewayBundle, storeNodeRuntime } from "../cloud-init/bundle-runtime.ts";
import { type StoredBundle, USER_DATA_LIMIT } from "../cloud-init/render.ts";
import { instancePorts } from "../deploy/ecosystem.ts";
import type { Settings } from "./config.ts";
import { apiInbound, apiOutbound, gatewayInbound, gatewayOutbound } from "./firewall-rules.ts";
import { createStack } from "./fleet-stack.ts";
import { ecosystemOptions } from "./gateway-box.ts";
import { loadStackConfig } from "./load-config.ts";
import { type FleetMocks, installMocks, MOCK_DATABASE, type RecordedResource, settle } from "./mocks.ts";
import { DEVICE_PORTS } from "./readiness.ts";
import { checkNoClearTextSecrets, readStackFile, standInSecrets } from "./stack-file.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface PlanOptions {
  readonly stack: string;
  readonly stackFile: string;
  /** dist/ of `npm run build`; the bundle adds the Node runtime and node_modules (cloud-init/bundle-runtime.ts). */
  readonly distDir: string;
}

/** Runs the program under mocks and returns the plan as text lines. */
export async function plan(options: PlanOptions): Promise<string[]> {
  const file = readStackFile(options.stackFile);
  checkNoClearTextSecrets(file);
  const secrets = standInSecrets(file.config);
  const mocks = await installMocks({
    config: { ...file.config, ...secrets },
    secretKeys: Object.keys(secrets),
    region: file.config.region ?? "",
    stack: options.stack,
  });
  const config = loadStackConfig({ allowPlaceholders: true });
  const bundle = storeGatewayBundle(options.distDir, root);
  // Mocked droplets are "ready" at once; `pulumi up` waits for the real device listener.
  const nodeRuntime = storeNodeRuntime(root);
  createStack(config, bundle, { nodeRuntime, gatewayReady: async () => {} });
  await settle();
  const s = config.settings;
  return [
    `voice-fleet plan: stack ${options.stack}, from ${path.relative(root, options.stackFile)} (mocked: no cloud account)`,
    `bundle: ${path.relative(root, options.distDir)}/ + Node ${process.version} + node_modules (${bundle.files} files, ` +
      `${bundle.unpackedBytes.toLocaleString("en")} bytes) packed to ${bundle.bytes.length.toLocaleString("en")} bytes ` +
      `${packTime(bundle)}, sha256 ${bundle.sha256}`,
    `API droplet's Node runtime object: Node, npm, PM2 (${nodeRuntime.files} files) packed to ` +
      `${nodeRuntime.bytes.length.toLocaleString("en")} bytes ${packTime(nodeRuntime)}, sha256 ${nodeRuntime.sha256}`,
    ...notes(s, Object.keys(secrets)),
    "",
    `resources (${mocks.resources.filter((r) => !r.type.startsWith("voice-fleet:")).length}):`,
    ...resources(mocks),
    "",
    "firewalls (inbound: everything not listed is dropped):",
    ...firewalls(mocks, s),
    "",
    `gateway instances per droplet (${s.gatewaySlots.map((x) => `slot ${x}`).join(", ")}; reserved IP on slot ${s.gatewayActiveSlot}):`,
    ...instancePorts(ecosystemOptions(s)).map(
      (p) =>
        `  gateway-${p.instanceId}  UDP ${p.udpPort}  health ${p.healthPort}  ${s.workersPerInstance} Opus workers`,
    ),
    "",
    `user data (DigitalOcean limit ${USER_DATA_LIMIT.toLocaleString("en")} bytes):`,
    ...mocks.ofType(DROPLET).map((d) => {
      const ud = String(d.inputs.userData ?? "");
      const size = Buffer.byteLength(ud);
      const pct = ((100 * size) / USER_DATA_LIMIT).toFixed(1);
      const sha = createHash("sha256").update(ud).digest("hex").slice(0, 12);
      return `  ${pad(d.name, 12)} ${pad(size.toLocaleString("en"), 7)} bytes  ${pct}%  (secret; sha256 ${sha}… with stand-in secrets)`;
    }),
  ];
}

const DROPLET = "digitalocean:index/droplet:Droplet";

function packTime(b: StoredBundle): string {
  return b.packMs > 0 ? `in ${(b.packMs / 1000).toFixed(1)} s` : "(packed before: reused)";
}

function notes(s: Settings, standIns: string[]): string[] {
  const out: string[] = [];
  if (s.placeholders.length > 0) {
    out.push(`! placeholders still set (pulumi preview/up refuse them): ${s.placeholders.join(", ")}`);
  }
  out.push(`! secrets not read; stand-ins used for: ${standIns.join(", ")}`);
  out.push(
    `! the database cluster "${s.databaseClusterName}" is looked up at preview time; mocked here (VPC ${MOCK_DATABASE.vpcRange})`,
  );
  out.push(
    s.gatewayReadyTimeoutMinutes > 0
      ? `! the reserved IP moves to a new gateway droplet only once it accepts devices (TCP ${DEVICE_PORTS.join(" or ")}); pulumi up waits up to ${s.gatewayReadyTimeoutMinutes} min`
      : "! gatewayReadyTimeoutMinutes is 0: the reserved IP moves as soon as a new gateway droplet exists",
  );
  return out;
}

function resources(mocks: FleetMocks): string[] {
  const names = new Map(mocks.resources.map((r) => [r.id, r.name]));
  const ref = (v: unknown): string => names.get(String(v)) ?? String(v);
  return mocks.resources
    .filter((r) => !r.type.startsWith("voice-fleet:"))
    .map((r) => `  + ${pad(shortType(r.type), 20)} ${pad(r.name, 24)} ${describe(r, ref)}`);
}

function describe(r: RecordedResource, ref: (v: unknown) => string): string {
  const i = r.inputs as Record<string, unknown>;
  const flags = `${r.protect ? "  [protected]" : ""}${r.ignoreChanges.includes("userData") ? "  [pinned: keeps its user data, size, SSH keys and image]" : ""}`;
  switch (shortType(r.type)) {
    case "Droplet":
      return (
        `${i.name} size=${i.size} region=${i.region} image=${i.image} vpc=${ref(i.vpcUuid)} ` +
        `tags=${list(i.tags)} monitoring=${i.monitoring} sshKeys=${list(i.sshKeys)}${flags}`
      );
    case "Vpc":
      return `${i.name} region=${i.region} ipRange=${i.ipRange}`;
    case "Tag":
      return String(i.name);
    case "ReservedIp":
      return `region=${i.region}${flags}`;
    case "ReservedIpAssignment":
      return `ip=${i.ipAddress} -> droplet ${ref(i.dropletId)}`;
    case "Firewall":
      return `${i.name} on tag ${list(i.tags)} (${(i.inboundRules as unknown[]).length} in, ${(i.outboundRules as unknown[]).length} out)`;
    case "VpcPeering":
      return `${i.name} vpcs=${list((i.vpcIds as unknown[]).map(ref))}`;
    case "DatabaseFirewall":
      return `cluster=${i.clusterId} trusted=${(i.rules as { type: string; value: unknown }[]).map((x) => `${x.type}:${ref(x.value)}`).join(", ")}`;
    case "Project":
      return `${i.name} (${i.environment}) resources=${(i.resources as unknown[]).length}`;
    case "SpacesKey":
      return `${i.name} grants=${(i.grants as { bucket: string; permission: string }[]).map((g) => `${g.permission}:${g.bucket || "*"}`).join(", ")} (secret kept in state)`;
    case "digitalocean":
      return "explicit provider: the API token plus the Spaces key above";
    case "SpacesBucket":
      return `${i.name} region=${i.region} acl=${i.acl}`;
    case "SpacesBucketObject":
      return `${i.key} ${objectSize(i.source)} acl=${i.acl} (from ${path.relative(root, path.dirname(String(i.source)))}/)`;
    case "MonitorAlert":
      return `${i.compare} ${i.value}% over ${i.window} on tag ${list(i.tags)} -> ${list((i.alerts as { emails: string[] }).emails)}`;
    default:
      return "";
  }
}

interface FwRule {
  protocol: string;
  portRange?: string;
  sourceAddresses?: string[];
  destinationAddresses?: string[];
}

function firewalls(mocks: FleetMocks, s: Settings): string[] {
  // The reason of each rule, from the same rule lists the program used.
  const reasons = (
    inbound: { protocol: string; portRange?: string; why: string }[],
    outbound: typeof inbound,
  ) =>
    new Map([
      ...inbound.map((r) => [`in ${r.protocol} ${r.portRange ?? ""}`, r.why] as const),
      ...outbound.map((r) => [`out ${r.protocol} ${r.portRange ?? ""}`, r.why] as const),
    ]);
  const byRole = {
    gateway: reasons(gatewayInbound(s), gatewayOutbound(s)),
    api: reasons(apiInbound(s), apiOutbound(s, "", "")),
  };
  const out: string[] = [];
  for (const fw of mocks.ofType("digitalocean:index/firewall:Firewall")) {
    const why = String(fw.inputs.name).endsWith("-gateway") ? byRole.gateway : byRole.api;
    out.push(`  ${fw.inputs.name} (droplets tagged ${list(fw.inputs.tags)})`);
    const line = (dir: "in" | "out", r: FwRule): string => {
      const peers = dir === "in" ? r.sourceAddresses : r.destinationAddresses;
      const port = r.portRange ?? "-";
      const reason = why.get(`${dir} ${r.protocol} ${r.portRange ?? ""}`) ?? "";
      return `    ${pad(dir, 3)} ${pad(r.protocol, 4)} ${pad(port, 11)} ${dir === "in" ? "from" : "to  "} ${pad(list(peers), 40)} ${reason}`;
    };
    for (const r of fw.inputs.inboundRules as FwRule[]) out.push(line("in", r));
    for (const r of fw.inputs.outboundRules as FwRule[]) out.push(line("out", r));
  }
  return out;
}

function objectSize(source: unknown): string {
  try {
    return `${statSync(String(source)).size.toLocaleString("en")} bytes`;
  } catch {
    return "(source missing)";
  }
}

function shortType(type: string): string {
  return type.split(":").pop() ?? type;
}

function list(v: unknown): string {
  return Array.isArray(v) ? v.join(", ") : String(v ?? "");
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--stack");
  const stack = (i > 0 ? process.argv[i + 1] : undefined) ?? process.env.PULUMI_STACK ?? "prod";
  try {
    const lines = await plan({
      stack,
      stackFile: path.join(root, `Pulumi.${stack}.yaml`),
      distDir: path.join(root, "dist"),
    });
    console.log(lines.join("\n"));
  } catch (err) {
    console.error(`plan failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
