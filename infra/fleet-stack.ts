/**
 * Composes the stack: network, the reserved IP, the bundle store, the gateway box of each
 * slot, the API box and its reserved IP, database access, monitoring. index.ts runs it
 * under Pulumi; `npm run plan` and the tests run it under mocks.
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import type { StoredBundle } from "../cloud-init/render.ts";
import { ApiBox } from "./api-box.ts";
import { BundleStore } from "./bundle-store.ts";
import { DatabaseAccess, lookupDatabase } from "./database.ts";
import { GatewayBox } from "./gateway-box.ts";
import type { StackConfig } from "./load-config.ts";
import { FleetMonitoring } from "./monitoring.ts";
import { FleetNetwork, fleetPrefix } from "./network.ts";
import type { GatewayReadiness } from "./readiness.ts";

export interface FleetStack {
  readonly network: FleetNetwork;
  readonly bundleStore: BundleStore;
  readonly reservedIp: digitalocean.ReservedIp;
  readonly reservedIpAssignment: digitalocean.ReservedIpAssignment;
  readonly gateways: ReadonlyMap<string, GatewayBox>;
  readonly activeSlot: string;
  readonly activeGateway: GatewayBox;
  readonly api: ApiBox;
  /** The API's public address (DNS of `domain`, the OTA URL): it outlives API droplets. */
  readonly apiReservedIp: digitalocean.ReservedIp;
  readonly apiReservedIpAssignment: digitalocean.ReservedIpAssignment;
  readonly database: DatabaseAccess;
  readonly monitoring: FleetMonitoring;
}

export interface StackOptions {
  /**
   * Resolves when a gateway droplet (by its public address) serves devices: the reserved
   * IP moves only then. `pulumi up` passes the TCP probe of readiness.ts; mocks pass a stand-in.
   */
  readonly gatewayReady: GatewayReadiness;
  /** The Node runtime object of the API droplet (cloud-init/bundle-runtime.ts storeNodeRuntime). */
  readonly nodeRuntime: StoredBundle;
}

export function createStack(config: StackConfig, bundle: StoredBundle, options: StackOptions): FleetStack {
  const { settings: s, secrets } = config;
  const prefix = fleetPrefix();

  // The address devices and the OTA use. It lives outside every droplet and is
  // protected: replacing or rotating gateway droplets moves it, never deletes it.
  const reservedIp = new digitalocean.ReservedIp("gateway-ip", { region: s.region }, { protect: true });

  const db = lookupDatabase(s);
  const network = new FleetNetwork("network", {
    settings: s,
    databaseRange: db.clusterRange,
    gatewayIp: reservedIp.ipAddress,
  });

  // The gateway bundle, uploaded once for every slot; user data names its URL and hash.
  const bundleStore = new BundleStore("bundle", {
    settings: s,
    bucketName: s.bundleBucket ?? `${prefix}-bundles`,
    bundle,
    runtime: options.nodeRuntime,
  });

  const gateways = new Map<string, GatewayBox>();
  for (const slot of s.gatewaySlots) {
    gateways.set(
      slot,
      new GatewayBox(`gateway-${slot}`, {
        settings: s,
        secrets,
        slot,
        pinned: s.gatewayPinnedSlots.includes(slot),
        dropletName: `${prefix}-gateway-${slot}`,
        vpcId: network.vpc.id,
        tags: [network.tags.fleet, network.tags.gateway],
        publicHost: reservedIp.ipAddress,
        bundle: bundleStore.ref,
      }),
    );
  }
  const activeGateway = gateways.get(s.gatewayActiveSlot) as GatewayBox;

  // The reserved IP points at the active slot's droplet. A new droplet there (replace,
  // or a switch of slot) creates the new assignment first, which moves the address;
  // deleting the old assignment then leaves it alone (it is no longer on that droplet).
  // The assignment's droplet id is known only once the new droplet is *ready* (its device
  // listener open, readiness.ts), so the address moves only then: until that moment the
  // old droplet keeps it and serves, and Pulumi deletes the old droplet only after the move.
  const readyDropletId = pulumi
    .all([activeGateway.droplet.id, activeGateway.droplet.ipv4Address])
    .apply(async ([id, ip]) => {
      if (!pulumi.runtime.isDryRun() && s.gatewayReadyTimeoutMinutes > 0) await options.gatewayReady(ip);
      return Number(id);
    });
  const reservedIpAssignment = new digitalocean.ReservedIpAssignment(
    "gateway-ip-assignment",
    { ipAddress: reservedIp.ipAddress, dropletId: readyDropletId },
    { dependsOn: [activeGateway.droplet] },
  );

  // Peering and trusted source first, then the API droplet (database.ts says why).
  const database = new DatabaseAccess("database", {
    settings: s,
    lookup: db,
    vpcId: network.vpc.id,
    peeringName: `${prefix}-db`,
    trustedTags: [network.tags.api],
  });

  const api = new ApiBox("api", {
    settings: s,
    secrets,
    dropletName: `${prefix}-api`,
    vpcId: network.vpc.id,
    tags: [network.tags.fleet, network.tags.api],
    mqttHost: reservedIp.ipAddress,
    databaseUrl: db.connectionString,
    databaseCa: db.caCertificate,
    nodeRuntime: bundleStore.runtimeRef,
    dependsOn: [database.peering, database.firewall],
  });

  // The API's address. Any change of its user data (a release, a rotated key, otaMqttTls)
  // replaces the API droplet, and a new droplet has a new public IP: DNS (`domain`, the
  // OTA host name) and certbot point at this reserved IP instead, which the new droplet
  // takes over as soon as it exists (create-before-delete, as for the gateway's). No
  // readiness wait here: the old API droplet is deleted in the same `up` either way.
  const apiReservedIp = new digitalocean.ReservedIp("api-ip", { region: s.region }, { protect: true });
  const apiReservedIpAssignment = new digitalocean.ReservedIpAssignment(
    "api-ip-assignment",
    { ipAddress: apiReservedIp.ipAddress, dropletId: api.droplet.id.apply(Number) },
    { dependsOn: [api.droplet] },
  );

  const monitoring = new FleetMonitoring("monitoring", {
    settings: s,
    roleTags: { gateway: network.tags.gateway, api: network.tags.api },
    // Droplets only. A reserved IP listed here breaks every later `up`: the Projects API
    // returns it as do:floatingip:<ip>, the provider sees a difference, tries to move it
    // and fails with 412 "Cannot move a Reserved IP with an associated Droplet"
    // (terraform-provider-digitalocean #1264, #1031). It stays in the default project.
    projectResources: [...[...gateways.values()].map((g) => g.droplet.dropletUrn), api.droplet.dropletUrn],
  });

  db.clusterRegion.apply((region) => {
    if (region !== s.region) {
      pulumi.log.warn(
        `the database cluster is in ${region}, the fleet in ${s.region}: it works through VPC peering, ` +
          "with the latency of the distance between regions",
      );
    }
  });

  return {
    network,
    bundleStore,
    reservedIp,
    reservedIpAssignment,
    gateways,
    activeSlot: s.gatewayActiveSlot,
    activeGateway,
    api,
    apiReservedIp,
    apiReservedIpAssignment,
    database,
    monitoring,
  };
}
