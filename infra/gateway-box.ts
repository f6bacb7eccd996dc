/**
 * One gateway droplet: EMQX plus the PM2-run gateway instances, all set up by its
 * cloud-init user data. The reserved IP is not part of a box (it outlives them: see
 * stack.ts); the box only needs to know it, because the gateways tell devices that
 * address for UDP.
 */
import { createHash } from "node:crypto";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import {
  assertUserDataFits,
  type BundleRef,
  type GatewayUserDataInput,
  renderGatewayUserData,
} from "../cloud-init/render.ts";
import { DEFAULT_ECOSYSTEM, type EcosystemOptions, instancePorts } from "../deploy/ecosystem.ts";
import type { Settings } from "./config.ts";
import { fleetDropletArgs, SECRET_USER_DATA } from "./droplet.ts";
import { EMQX_DASHBOARD_PORT } from "./firewall-rules.ts";
import { MAX_SECRET_LENGTH, type Secrets } from "./secrets.ts";

export interface GatewayBoxArgs {
  readonly settings: Settings;
  readonly secrets: Secrets;
  readonly slot: string;
  /** Keep the droplet's current user data: it serves devices while another slot rolls. */
  readonly pinned: boolean;
  readonly dropletName: string;
  readonly vpcId: pulumi.Input<string>;
  readonly tags: readonly pulumi.Input<string>[];
  /** The reserved IP (the address devices use). */
  readonly publicHost: pulumi.Input<string>;
  /** Where first boot downloads the bundle, and its hash (bundle-store.ts). */
  readonly bundle: pulumi.Input<BundleRef>;
}

export function ecosystemOptions(s: Settings): EcosystemOptions {
  return {
    ...DEFAULT_ECOSYSTEM,
    instances: s.gatewayInstances,
    workersPerInstance: s.workersPerInstance,
    firstUdpPort: s.firstUdpPort,
    firstHealthPort: s.firstHealthPort,
  };
}

export class GatewayBox extends pulumi.ComponentResource {
  readonly droplet: digitalocean.Droplet;
  /** The rendered cloud-config (a secret: it holds the MQTT and LiveKit secrets). */
  readonly userData: pulumi.Output<string>;
  /** Private health URLs, one per instance (reachable inside the VPC). */
  readonly healthUrls: pulumi.Output<string[]>;
  readonly dashboardUrl: pulumi.Output<string>;

  constructor(name: string, args: GatewayBoxArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:GatewayBox", name, {}, opts);
    const s = args.settings;
    const input = (
      publicHost: string,
      bundle: BundleRef,
      secrets: GatewayUserDataInput["secrets"],
      dnsToken?: string,
    ): GatewayUserDataInput => ({
      publicHost,
      ecosystem: ecosystemOptions(s),
      bundle,
      emqxImage: s.emqxImage,
      logLevel: s.logLevel,
      livekitUrl: s.livekitUrl,
      secrets,
      // MQTT over TLS on 8883 with the stack's MQTT domain (docs/droplet.md section 5).
      mqttTls:
        s.mqttDomain && dnsToken
          ? { domain: s.mqttDomain, alertEmail: s.alertEmail, dnsToken, keepPlainPort: s.mqttPlainPort }
          : undefined,
    });

    // Checked now, with stand-ins longer than real values, so that even the first
    // preview (reserved IP and bucket not yet known) fails when user data is too big.
    assertUserDataFits(
      renderGatewayUserData(
        input("255.255.255.255", STAND_IN_BUNDLE, longestStandInSecrets(s), standInFiller("dns-token")),
      ),
      `gateway ${args.slot}`,
    );

    const sec = args.secrets;
    this.userData = pulumi.secret(
      pulumi
        .all([
          args.publicHost,
          args.bundle,
          sec.gatewayMqttPassword,
          sec.mqttSigningKey,
          sec.emqxDashboardPassword,
          sec.livekitApiKey,
          sec.livekitApiSecret,
          sec.mqttDnsToken,
        ])
        .apply(
          ([
            host,
            bundle,
            mqttPassword,
            mqttSigningKey,
            emqxDashboardPassword,
            livekitApiKey,
            livekitApiSecret,
            mqttDnsToken,
          ]) => {
            const userData = renderGatewayUserData(
              input(
                host,
                bundle,
                {
                  mqttPassword,
                  mqttSigningKey,
                  emqxDashboardPassword,
                  livekitApiKey,
                  livekitApiSecret,
                },
                mqttDnsToken,
              ),
            );
            assertUserDataFits(userData, `gateway ${args.slot}`);
            return userData;
          },
        ),
    );

    // The gateway box. A change of user data (a new bundle hash, a new secret) replaces it,
    // unless the slot is pinned: docs/runbook.md rolls a new slot while the pinned one serves.
    // So does a new size: the provider would resize in place, which powers the droplet off
    // (DigitalOcean resizes only stopped droplets, and never shrinks a disk) while it holds
    // the reserved IP; replaced, the new size boots beside it and takes the address when ready.
    // New SSH keys or a new image replace a droplet too (ForceNew in the provider): a pinned
    // slot ignores all four (PINNED_IGNORED), so its droplet stays as it is while it serves;
    // a new region or VPC still replaces it.
    this.droplet = new digitalocean.Droplet(
      name,
      fleetDropletArgs({
        settings: s,
        dropletName: args.dropletName,
        size: s.gatewaySize,
        vpcId: args.vpcId,
        tags: args.tags,
        userData: this.userData,
      }),
      {
        parent: this,
        additionalSecretOutputs: SECRET_USER_DATA,
        ignoreChanges: args.pinned ? PINNED_IGNORED : [],
        replaceOnChanges: ["size"],
      },
    );

    const ports = instancePorts(ecosystemOptions(s));
    this.healthUrls = this.droplet.ipv4AddressPrivate.apply((ip) =>
      ports.map((p) => `http://${ip}:${p.healthPort}/health`),
    );
    this.dashboardUrl = pulumi.interpolate`http://${this.droplet.ipv4AddressPrivate}:${EMQX_DASHBOARD_PORT}/`;
    this.registerOutputs({ dropletId: this.droplet.id, healthUrls: this.healthUrls });
  }
}

/**
 * What a pinned slot's droplet keeps whatever the stack says: the inputs a rollout changes
 * that would replace it (user data, SSH keys, image: ForceNew in the provider) or power it
 * off (size: a resize). Not its region or VPC (`vpcUuid`), ForceNew too: a new `region` or
 * `vpcIpRange` moves the whole stack, pinned slots included (docs/runbook.md, section 1).
 */
export const PINNED_IGNORED = ["userData", "size", "sshKeys", "image"];

/** A bundle URL longer than any real bucket's (63-character name, longest region). */
const STAND_IN_BUNDLE: BundleRef = {
  url: `https://${"b".repeat(63)}.xxxx.digitaloceanspaces.com/gateway/${"0".repeat(64)}.tar.gz`,
  sha256: "0".repeat(64),
};

/** Deterministic, incompressible stand-ins as long as the longest secret config accepts. */
function longestStandInSecrets(s: Settings): GatewayUserDataInput["secrets"] {
  return {
    mqttPassword: standInFiller("mqtt"),
    mqttSigningKey: standInFiller("signing"),
    emqxDashboardPassword: standInFiller("dashboard"),
    livekitApiKey: s.livekitUrl ? standInFiller("lk-key") : undefined,
    livekitApiSecret: s.livekitUrl ? standInFiller("lk-secret") : undefined,
  };
}

/** A deterministic, incompressible stand-in as long as the longest secret config accepts. */
function standInFiller(label: string): string {
  let out = "";
  for (let i = 0; out.length < MAX_SECRET_LENGTH; i++) {
    out += createHash("sha256").update(`${label}:${i}`).digest("hex");
  }
  return out.slice(0, MAX_SECRET_LENGTH);
}
