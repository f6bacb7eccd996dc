/**
 * One entry of `databaseTrustedSources` (`type:value`, as `doctl databases firewalls list`
 * writes them), checked at the config edge. The stack replaces the cluster's whole list
 * (database.ts), and DigitalOcean refuses a bad value only at `pulumi up`, as the database
 * firewall's error. Pure.
 */
import { isIP } from "node:net";
import { parseCidr } from "./cidr.ts";

export interface TrustedSource {
  readonly type: string;
  readonly value: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * What each type's value is: "The ID of the specific resource, the name of a tag applied to
 * a group of resources, or the IP address" (`value` in the API's firewall_rule.yml). Droplet
 * ids are numbers, Kubernetes clusters and apps UUIDs; an address may carry a prefix.
 */
const VALUE: Readonly<Record<string, { readonly ok: (v: string) => boolean; readonly what: string }>> = {
  droplet: { ok: (v) => /^[0-9]+$/.test(v), what: "a droplet id (a number: doctl compute droplet list)" },
  ip_addr: { ok: (v) => isIP(v) !== 0 || parseCidr(v) !== undefined, what: "an IP address or CIDR" },
  k8s: { ok: (v) => UUID.test(v), what: "a Kubernetes cluster id (a UUID)" },
  app: { ok: (v) => UUID.test(v), what: "an app id (a UUID)" },
  tag: { ok: (v) => /^[A-Za-z0-9:_-]{1,255}$/.test(v), what: "a tag name" },
};

/** The entry, or why it is refused. */
export function parseTrustedSource(entry: string): TrustedSource | string {
  const [type = "", ...rest] = entry.split(":");
  const value = rest.join(":");
  const rule = VALUE[type];
  if (!rule || !value) return `must be type:value (${Object.keys(VALUE).join(", ")})`;
  if (!rule.ok(value)) return `${type} must be followed by ${rule.what}`;
  return { type, value };
}
