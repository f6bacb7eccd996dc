/**
 * Which `vpcIpRange` DigitalOcean accepts for a VPC, checked at the config edge so that a
 * range it refuses fails `npm run plan` and `pulumi preview` naming the key, not `pulumi up`
 * halfway (the VPC is created first; network.ts). Pure. The sources are in docs/runbook.md,
 * "1. Settings" (`vpcIpRange`).
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
 * Ranges DigitalOcean keeps for itself, as its VPC guide lists them ("How to Plan Your Custom
 * VPC Network", products/networking/vpc/concepts/plan-your-network, section "DigitalOcean
 * Reserved IP Addresses and Ranges", last edited 26 Nov 2025): four in all regions "for
 * DigitalOcean internal use", and one /16 per region. The list was read from a copy of that
 * page stored in a public repository (scraped 2026-01-07): the stored copy of
 * docs.digitalocean.com itself (an older edit) breaks off before the list, and the section's
 * first paragraph is word for word the same in both. A region
 * not in the table (a newer one) gets the four of all regions only.
 */
export const VPC_RESERVED_ALL_REGIONS: readonly string[] = [
  "10.244.0.0/16",
  "10.245.0.0/16",
  "10.246.0.0/24",
  "10.229.0.0/16",
];

export const VPC_RESERVED_BY_REGION: Readonly<Record<string, string>> = {
  ams2: "10.14.0.0/16",
  ams3: "10.18.0.0/16",
  atl1: "10.50.0.0/16",
  blr1: "10.47.0.0/16",
  fra1: "10.19.0.0/16",
  lon1: "10.16.0.0/16",
  nyc1: "10.10.0.0/16",
  nyc2: "10.13.0.0/16",
  nyc3: "10.17.0.0/16",
  sfo1: "10.12.0.0/16",
  sfo2: "10.46.0.0/16",
  sfo3: "10.48.0.0/16",
  sgp1: "10.15.0.0/16",
  syd1: "10.49.0.0/16",
  tor1: "10.20.0.0/16",
};

/** The ranges DigitalOcean reserves in `region`, each with why. */
export function reservedIn(region: string): readonly { readonly range: string; readonly why: string }[] {
  const regional = VPC_RESERVED_BY_REGION[region];
  return [
    ...VPC_RESERVED_ALL_REGIONS.map((range) => ({
      range,
      why: "DigitalOcean reserves it in all regions (internal use)",
    })),
    ...(regional ? [{ range: regional, why: `DigitalOcean reserves it in ${region}` }] : []),
  ];
}

/** Why DigitalOcean would refuse `text` as a VPC's range in `region`, or undefined when it would not. */
export function vpcRangeProblem(text: string, region: string): string | undefined {
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
  for (const reserved of reservedIn(region)) {
    if (overlaps(parseCidr(reserved.range) as Cidr, cidr)) {
      return `overlaps ${reserved.range}: ${reserved.why}`;
    }
  }
  return undefined;
}
