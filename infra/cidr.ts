/** Small, pure CIDR helpers for config validation and firewall checks. */
import { isIPv4, isIPv6 } from "node:net";

export interface Cidr {
  readonly family: 4 | 6;
  readonly prefix: number;
  /** IPv4 only: the network address as an unsigned 32-bit number. */
  readonly base: number;
  readonly isPrivate: boolean;
  readonly text: string;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, bits, ...rest] = text.split("/");
  if (!addr || bits === undefined || rest.length > 0 || !/^[0-9]{1,3}$/.test(bits)) return undefined;
  const prefix = Number(bits);
  if (isIPv4(addr)) {
    if (prefix > 32) return undefined;
    const base = network(ipv4Number(addr), prefix);
    return { family: 4, prefix, base, isPrivate: isPrivate4(base, prefix), text };
  }
  if (isIPv6(addr)) {
    if (prefix > 128) return undefined;
    return { family: 6, prefix, base: 0, isPrivate: /^f[cd]/i.test(addr), text };
  }
  return undefined;
}

/** IPv4: the range as a network address and prefix ("10.20.0.5/16" gives "10.20.0.0/16"). */
export function networkText(cidr: Cidr): string {
  const octets = [24, 16, 8, 0].map((shift) => Math.floor(cidr.base / 2 ** shift) % 256);
  return `${octets.join(".")}/${cidr.prefix}`;
}

function ipv4Number(addr: string): number {
  return addr.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

function network(n: number, prefix: number): number {
  return prefix === 0 ? 0 : n - (n % 2 ** (32 - prefix));
}

function isPrivate4(base: number, prefix: number): boolean {
  const within = (net: string, netPrefix: number): boolean =>
    prefix >= netPrefix && network(base, netPrefix) === ipv4Number(net);
  return within("10.0.0.0", 8) || within("172.16.0.0", 12) || within("192.168.0.0", 16);
}

/** RFC 5737 / RFC 3849 documentation ranges: placeholders, never real admin addresses. */
export function isPlaceholderCidr(cidr: Cidr): boolean {
  if (cidr.family === 6) return /^2001:0?db8:/i.test(cidr.text);
  return ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"].some((doc) =>
    contains(parseCidr(doc) as Cidr, cidr),
  );
}

/** True when `inner` lies entirely within `outer` (IPv4). */
export function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== 4 || inner.family !== 4 || inner.prefix < outer.prefix) return false;
  const size = 2 ** (32 - outer.prefix);
  return Math.floor(inner.base / size) === Math.floor(outer.base / size);
}

/** True when two IPv4 ranges share an address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b) || contains(b, a);
}
