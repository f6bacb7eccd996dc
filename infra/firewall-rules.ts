/**
 * The cloud firewall rules of both droplets, as plain data: network.ts turns them into
 * DigitalOcean firewalls, `npm run plan` prints them, the tests compare them with the
 * allowed list. DigitalOcean firewalls are stateful: replies to allowed traffic pass.
 */
import { instancePorts } from "../deploy/ecosystem.ts";
import type { Settings } from "./config.ts";

export const ANYWHERE = ["0.0.0.0/0", "::/0"] as const;

/** Postgres on DigitalOcean managed clusters (25061: the connection pooler). */
export const POSTGRES_PORTS = "25060-25061";
export const EMQX_DASHBOARD_PORT = 18083;

export interface InboundRule<T = string> {
  readonly protocol: "tcp" | "udp" | "icmp";
  /** A port or `first-last`; absent for ICMP. */
  readonly portRange?: string;
  readonly sources: readonly T[];
  readonly why: string;
}

export interface OutboundRule<T = string> {
  readonly protocol: "tcp" | "udp" | "icmp";
  readonly portRange?: string;
  readonly destinations: readonly T[];
  readonly why: string;
}

export function portRange(first: number, count: number): string {
  return count === 1 ? String(first) : `${first}-${first + count - 1}`;
}

/** First and last UDP port, first and last health port, from the ecosystem's own numbering. */
export function gatewayPorts(s: Settings): { udp: string; health: string } {
  const ports = instancePorts({
    instances: s.gatewayInstances,
    workersPerInstance: s.workersPerInstance,
    firstUdpPort: s.firstUdpPort,
    firstHealthPort: s.firstHealthPort,
    killTimeoutMs: 10_000,
    defaultEnvFile: "",
  });
  return {
    udp: portRange(ports[0]?.udpPort ?? s.firstUdpPort, ports.length),
    health: portRange(ports[0]?.healthPort ?? s.firstHealthPort, ports.length),
  };
}

/** Private: the VPC and the admins. (Services listen on the private address; admins tunnel.) */
function privateSources(s: Settings): string[] {
  return [s.vpcIpRange, ...s.adminCidrs];
}

/** MQTT ports devices reach: 8883 (TLS) with an MQTT domain, 1883 while the config keeps it. */
export function deviceMqttPorts(s: Pick<Settings, "mqttDomain" | "mqttPlainPort">): string[] {
  return [...(s.mqttPlainPort || !s.mqttDomain ? ["1883"] : []), ...(s.mqttDomain ? ["8883"] : [])];
}

export function gatewayInbound(s: Settings): InboundRule[] {
  const ports = gatewayPorts(s);
  const mqtt: InboundRule[] = deviceMqttPorts(s).map((port) => ({
    protocol: "tcp",
    portRange: port,
    sources: ANYWHERE,
    why: port === "8883" ? "MQTT over TLS: devices (EMQX)" : "MQTT: devices (EMQX)",
  }));
  return [
    ...mqtt,
    {
      protocol: "udp",
      portRange: ports.udp,
      sources: ANYWHERE,
      why: "device audio, one port per gateway instance",
    },
    { protocol: "tcp", portRange: "22", sources: s.adminCidrs, why: "SSH for admins" },
    {
      protocol: "tcp",
      portRange: ports.health,
      sources: privateSources(s),
      why: "gateway health and metrics",
    },
    {
      protocol: "tcp",
      portRange: String(EMQX_DASHBOARD_PORT),
      sources: privateSources(s),
      why: "EMQX dashboard",
    },
    { protocol: "icmp", sources: privateSources(s), why: "ping from the VPC and admins" },
  ];
}

export function gatewayOutbound(s: Settings): OutboundRule[] {
  return [
    {
      protocol: "udp",
      portRange: "1-65535",
      destinations: ANYWHERE,
      why: "audio to devices, LiveKit media, DNS, NTP",
    },
    {
      protocol: "tcp",
      portRange: "443",
      destinations: ANYWHERE,
      why: "LiveKit signalling, Docker Hub, the bundle object (Spaces), certbot (ACME, DNS API)",
    },
    { protocol: "tcp", portRange: "80", destinations: ANYWHERE, why: "Ubuntu package mirrors" },
    { protocol: "tcp", portRange: "53", destinations: ANYWHERE, why: "DNS over TCP" },
    { protocol: "tcp", portRange: "7881", destinations: ANYWHERE, why: "LiveKit ICE over TCP (fallback)" },
    { protocol: "tcp", portRange: "1-65535", destinations: [s.vpcIpRange], why: "inside the VPC" },
    { protocol: "icmp", destinations: ANYWHERE, why: "ping, path MTU discovery" },
  ];
}

export function apiInbound(s: Settings): InboundRule[] {
  return [
    { protocol: "tcp", portRange: "80", sources: ANYWHERE, why: "manager-web and the OTA over HTTP" },
    { protocol: "tcp", portRange: "443", sources: ANYWHERE, why: "manager-web and the API over HTTPS" },
    { protocol: "tcp", portRange: "22", sources: s.adminCidrs, why: "SSH for admins" },
    { protocol: "icmp", sources: privateSources(s), why: "ping from the VPC and admins" },
  ];
}

/** `database` is the managed cluster's private range, `gateway` the reserved IP (`/32`). */
export function apiOutbound<T>(s: Settings, database: T, gateway: T): OutboundRule<T | string>[] {
  return [
    {
      protocol: "tcp",
      portRange: "443",
      destinations: ANYWHERE,
      why: "release artifacts, the Node runtime object (Spaces), manager-api's npm ci, certbot",
    },
    {
      protocol: "tcp",
      portRange: "80",
      destinations: ANYWHERE,
      why: "Ubuntu package mirrors, certbot HTTP-01",
    },
    { protocol: "tcp", portRange: "53", destinations: ANYWHERE, why: "DNS over TCP" },
    { protocol: "udp", portRange: "53", destinations: ANYWHERE, why: "DNS" },
    { protocol: "udp", portRange: "123", destinations: ANYWHERE, why: "NTP" },
    {
      protocol: "tcp",
      portRange: POSTGRES_PORTS,
      destinations: [database],
      why: "managed Postgres (VPC peering)",
    },
    ...deviceMqttPorts(s).map((port) => ({
      protocol: "tcp" as const,
      portRange: port,
      destinations: [gateway],
      why: "MQTT to the gateway broker",
    })),
    { protocol: "tcp", portRange: "1-65535", destinations: [s.vpcIpRange], why: "inside the VPC" },
    { protocol: "icmp", destinations: ANYWHERE, why: "ping, path MTU discovery" },
  ];
}
