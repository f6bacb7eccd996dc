/**
 * What every droplet of the fleet shares: region, image, VPC, SSH keys, monitoring (the
 * alerts need the agent), and user data that holds secrets, so it is a secret output in
 * Pulumi state. One place, so the boxes cannot drift apart.
 */
import type * as digitalocean from "@pulumi/digitalocean";
import type * as pulumi from "@pulumi/pulumi";
import type { Settings } from "./config.ts";

export interface FleetDropletArgs {
  readonly settings: Settings;
  readonly dropletName: string;
  readonly size: string;
  readonly vpcId: pulumi.Input<string>;
  readonly tags: readonly pulumi.Input<string>[];
  readonly userData: pulumi.Input<string>;
}

export function fleetDropletArgs(a: FleetDropletArgs): digitalocean.DropletArgs {
  const s = a.settings;
  return {
    name: a.dropletName,
    region: s.region,
    size: a.size,
    image: s.image,
    vpcUuid: a.vpcId,
    sshKeys: [...s.sshKeyFingerprints],
    tags: [...a.tags],
    monitoring: true,
    ipv6: false,
    backups: false,
    gracefulShutdown: true,
    userData: a.userData,
  };
}

/** User data embeds secrets: never in state in clear. */
export const SECRET_USER_DATA = ["userData"];
