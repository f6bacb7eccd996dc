/**
 * Which `vpcIpRange` DigitalOcean accepts for a VPC, checked at the config edge so that a
 * range it refuses fails `npm run plan` and `pulumi preview` naming the key, not `pulumi up`
 * halfway (the VPC is created first; network.ts). Pure. The sources are in docs/runbook.md,
 * "Stack settings" (`vpcIpRange`).
 */
import { type Cidr, networkText, overlaps, parseCidr } from "./cidr.ts";

/**
 * The API's `ip_range` "may not be smaller than /24 nor larger than /16"
 * (digitalocean/openapi, specification/resources/vpcs/models/vpc.yml; the same words in the
 * Terraform provider's docs/resources/vpc.md). DigitalOcean's product pages offer down to
 * /28; the API's own description is the stricter, so it is the one checked.
 */
export const VPC_PREFIX_MIN = 16;
export const VPC_PREFIX_MAX = 24;

/**
 * Ranges DigitalOcean keeps for itself ("DigitalOcean Reserved IP Addresses and Ranges" in
 * its VPC guide, products/networking/vpc/concepts/plan-your-network): DOKS's pod and service
 * networks and its internal /24, and 10.10.0.0/16, reserved in some regions. Which regions is
 * not checked here: it is refused in all, so a stack cannot move to one where it is taken.
 */
export const VPC_RESERVED: readonly { readonly range: string; readonly why: string }[] = [
  { range: "10.244.0.0/16", why: "DigitalOcean reserves it (Kubernetes pod network)" },
  { range: "10.245.0.0/16", why: "DigitalOcean reserves it (Kubernetes service network)" },
  { range: "10.246.0.0/24", why: "DigitalOcean reserves it (internal use)" },
  { range: "10.10.0.0/16", why: "DigitalOcean reserves it in some regions" },
];

/** Why DigitalOcean would refuse `text` as a VPC's range, or undefined when it would not. */
export function vpcRangeProblem(text: string): string | undefined {
  const cidr = parseCidr(text);
  if (!cidr) return "must be an IPv4 CIDR such as 10.60.0.0/20";
  if (cidr.family !== 4) return "must be an IPv4 CIDR: a VPC's range is IPv4 only";
  if (cidr.prefix < VPC_PREFIX_MIN || cidr.prefix > VPC_PREFIX_MAX) {
    return `must be /${VPC_PREFIX_MIN} to /${VPC_PREFIX_MAX} (DigitalOcean's VPC API refuses any other size), got /${cidr.prefix}`;
  }
  // Host bits set (10.20.0.5/16): DigitalOcean documents nothing for them. The API's
  // `ip_range` says only "in CIDR notation" (digitalocean/openapi, vpc.yml above); the
  // Terraform provider that pulumi-digitalocean bridges checks it with the plugin SDK's
  // validation.IsCIDR (digitalocean/vpc/resource_vpc.go of terraform-provider-digitalocean),
  // which is net.ParseCIDR and lets host bits through (helper/validation/network.go of
  // hashicorp/terraform-plugin-sdk; its CIDRNetwork, which refuses them, is not used), then
  // stores the range the API hands back, and `ip_range` is ForceNew. So either the API
  // refuses it, and `pulumi up` stops at the VPC, or it keeps a normalised range, and every
  // later `up` would see a changed ip_range and replace the VPC with every droplet in it.
  // Neither is tested against DigitalOcean here; both are refused at the edge.
  const network = networkText(cidr);
  if (network.split("/")[0] !== text.split("/")[0])
    return `${text} has host bits set: did you mean ${network}?`;
  if (network !== text) return `write it as ${network}: the provider compares the text, not the range`;
  // The VPC API's `ip_range` "must be in range of private addresses as defined in RFC1918".
  if (!cidr.isPrivate) {
    return "must lie inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918, as DigitalOcean requires)";
  }
  for (const reserved of VPC_RESERVED) {
    if (overlaps(parseCidr(reserved.range) as Cidr, cidr)) {
      return `overlaps ${reserved.range}: ${reserved.why}`;
    }
  }
  return undefined;
}
