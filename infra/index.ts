/**
 * The Pulumi program (Pulumi.yaml points here): reads the stack config and the gateway
 * bundle from dist/, composes the stack, exports what the on-call needs.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { readDistBundle } from "../cloud-init/render.ts";
import { loadStackConfig } from "./load-config.ts";
import { DEVICE_PORTS, tcpReadiness } from "./readiness.ts";
import { createStack } from "./stack.ts";

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "dist");
const config = loadStackConfig();
const fleet = createStack(config, readDistBundle(dist), {
  gatewayReady: tcpReadiness({
    ports: DEVICE_PORTS,
    timeoutMs: config.settings.gatewayReadyTimeoutMinutes * 60_000,
    log: (line) => pulumi.log.info(line),
  }),
});

/** What manager-api's OTA must hand to devices as the MQTT host. */
export const gatewayReservedIp = fleet.reservedIp.ipAddress;
export const activeGatewaySlot = fleet.activeSlot;
export const gatewayDropletIds = Object.fromEntries(
  [...fleet.gateways].map(([slot, g]) => [slot, g.droplet.id]),
);
export const gatewayHealthUrls = Object.fromEntries(
  [...fleet.gateways].map(([slot, g]) => [slot, g.healthUrls]),
);
export const emqxDashboardUrls = Object.fromEntries(
  [...fleet.gateways].map(([slot, g]) => [slot, g.dashboardUrl]),
);
export const apiDropletId = fleet.api.droplet.id;
export const apiPublicIp = fleet.api.droplet.ipv4Address;
export const vpcId = fleet.network.vpc.id;
