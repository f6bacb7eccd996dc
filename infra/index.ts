/**
 * The Pulumi program (Pulumi.yaml points here): reads the stack config, packs the gateway
 * bundle from dist/ (the object the stack uploads), composes the stack, exports what the
 * on-call needs.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { storeGatewayBundle, storeNodeRuntime } from "../cloud-init/bundle-runtime.ts";
import { createStack } from "./fleet-stack.ts";
import { loadStackConfig } from "./load-config.ts";
import { DEVICE_PORTS, tcpReadiness } from "./readiness.ts";
import { checkNoClearTextSecrets, readStackFile } from "./stack-file.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Pulumi hands the program decrypted values only: whether one was encrypted is in the file.
const stackFile = path.join(root, `Pulumi.${pulumi.getStack()}.yaml`);
if (existsSync(stackFile)) checkNoClearTextSecrets(readStackFile(stackFile));
const config = loadStackConfig();
const bundle = storeGatewayBundle(path.join(root, "dist"), root);
const nodeRuntime = storeNodeRuntime(root);
const fleet = createStack(config, bundle, {
  nodeRuntime,
  gatewayReady: tcpReadiness({
    ports: DEVICE_PORTS,
    timeoutMs: config.settings.gatewayReadyTimeoutMinutes * 60_000,
    log: (line) => pulumi.log.info(line),
  }),
});

/** What manager-api's OTA must hand to devices as the MQTT host. */
export const gatewayReservedIp = fleet.reservedIp.ipAddress;
export const activeGatewaySlot = fleet.activeSlot;
/** The bundle first boot installs: its object URL, SHA-256 and size. */
export const gatewayBundle = fleet.bundleStore.ref.apply((r) => ({ ...r, bytes: bundle.bytes.length }));
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
/** The API droplet's own address (SSH); changes whenever the droplet is replaced. */
export const apiPublicIp = fleet.api.droplet.ipv4Address;
/** Where DNS of `domain` (and the OTA host name) must point: stays across API droplet replacements. */
export const apiReservedIp = fleet.apiReservedIp.ipAddress;
export const vpcId = fleet.network.vpc.id;
