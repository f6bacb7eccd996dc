/**
 * A stand-in `digitalocean` resource provider for infra/test/runbook-recovery.test.ts,
 * served with @pulumi/pulumi's own provider server. The real provider needs the
 * DigitalOcean API (no network here); the engine, the state and every CLI command in the
 * test are real, and this answers the provider calls they make for the three resource
 * types of program.ts, with what matters to the runbook modelled as the real provider
 * does it: exactly the inputs that replace a resource there replace it here (REPLACE_ON),
 * every other change is an update in place, and create/delete are the only side effects.
 *
 * Every create, update and delete is appended to the JSON-lines file named by
 * RUNBOOK_TEST_CALLS, which is how the test sees what `pulumi up` did to "the cloud".
 * Droplet n (counted from that file) gets id 1000+n and the address 127.0.0.(10+n), so
 * the test decides which droplet is "ready" by listening on that address or not.
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";

export interface ProviderCall {
  readonly op: "create" | "update" | "delete";
  /** The resource type, e.g. digitalocean:index/droplet:Droplet. */
  readonly type: string;
  readonly id: string;
  readonly urn: string;
}

type Props = Record<string, unknown>;

const callsFile = process.env.RUNBOOK_TEST_CALLS;
if (!callsFile) throw new Error("RUNBOOK_TEST_CALLS is not set (the test sets it)");

const DROPLET = "digitalocean:index/droplet:Droplet";
const RESERVED_IP = "digitalocean:index/reservedIp:ReservedIp";
const ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment";

/**
 * Inputs whose change replaces the resource: the attributes with `ForceNew: true` in the
 * schema of the Terraform provider that @pulumi/digitalocean 4.80.1 wraps (its Droplet has
 * `gpuPartitionMode`, added in terraform-provider-digitalocean v2.97.0; the lists below are
 * the same in v2.97.0 to v2.99.1): digitalocean/droplet/resource_droplet.go,
 * digitalocean/reservedip/resource_reserved_ip.go and resource_reserved_ip_assignment.go.
 * `size` is not among them: the provider resizes in place (power off, resize, power on);
 * the stack replaces its gateway droplets on a new size with `replaceOnChanges`, its own
 * option, which program.ts does not model.
 */
const REPLACE_ON: Record<string, readonly string[]> = {
  [DROPLET]: [
    "image",
    "region",
    "publicNetworking",
    "sshKeys",
    "userData",
    "monitoring",
    "dropletAgent",
    "vpcUuid",
    "gpuPartitionMode",
  ],
  [RESERVED_IP]: ["region"],
  [ASSIGNMENT]: ["ipAddress", "dropletId"],
};

/** The droplet's CustomizeDiff: `ipv6` replaces it only when it goes from true to false. */
function replacedByIpv6(type: string, olds: Props, news: Props): boolean {
  return type === DROPLET && olds.ipv6 === true && news.ipv6 === false;
}

/** urn:pulumi:<stack>::<project>::<parent types $ type>::<name> -> the resource's own type. */
function typeOf(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.split("$").at(-1) ?? qualified;
}

function calls(): ProviderCall[] {
  if (!existsSync(callsFile as string)) return [];
  return readFileSync(callsFile as string, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProviderCall);
}

function record(call: ProviderCall): void {
  appendFileSync(callsFile as string, `${JSON.stringify(call)}\n`);
}

const provider: pulumi.provider.Provider = {
  version: "4.80.1",
  async diff(_id: string, urn: string, olds: Props, news: Props) {
    const keys = new Set([...Object.keys(news), ...(REPLACE_ON[typeOf(urn)] ?? [])]);
    const changed = [...keys].filter(
      (k) => k in news && JSON.stringify(olds[k] ?? null) !== JSON.stringify(news[k] ?? null),
    );
    const replaces = changed.filter((k) => REPLACE_ON[typeOf(urn)]?.includes(k));
    if (replacedByIpv6(typeOf(urn), olds, news)) replaces.push("ipv6");
    return { changes: changed.length > 0, replaces };
  },
  async create(urn: string, inputs: Props) {
    const type = typeOf(urn);
    let id: string;
    let outs: Props = { ...inputs };
    if (type === DROPLET) {
      const n = calls().filter((c) => c.op === "create" && c.type === DROPLET).length + 1;
      id = String(1000 + n);
      outs = { ...outs, ipv4Address: `127.0.0.${10 + n}`, ipv4AddressPrivate: `10.110.0.${n}` };
    } else if (type === RESERVED_IP) {
      // TEST-NET-1 (RFC 5737): nothing ever connects to it.
      id = "192.0.2.10";
      outs = { ...outs, ipAddress: id };
    } else if (type === ASSIGNMENT) {
      id = `${String(inputs.ipAddress)}-${String(inputs.dropletId)}`;
    } else {
      throw new Error(`fake-digitalocean: ${type} is not modelled`);
    }
    record({ op: "create", type, id, urn });
    return { id, outs };
  },
  async update(id: string, urn: string, olds: Props, news: Props) {
    record({ op: "update", type: typeOf(urn), id, urn });
    return { outs: { ...olds, ...news } };
  },
  async delete(id: string, urn: string) {
    record({ op: "delete", type: typeOf(urn), id, urn });
  },
};

await pulumi.provider.main(provider, process.argv.slice(2));
