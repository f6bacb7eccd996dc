/**
 * The fleet's network: its own VPC, the tags that group the droplets, and one cloud
 * firewall per role. Firewalls and alerts target tags, so a replaced droplet (or a new
 * gateway slot) is covered from its first boot, before any id is known.
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT, type Settings } from "./config.ts";
import {
  apiInbound,
  apiOutbound,
  gatewayInbound,
  gatewayOutbound,
  type InboundRule,
  type OutboundRule,
} from "./firewall-rules.ts";

/** Names start with project and stack, so a second stack in the account never shares them. */
export function fleetPrefix(): string {
  return `${PROJECT}-${pulumi.getStack()}`;
}

export interface FleetNetworkArgs {
  readonly settings: Settings;
  /** The managed database's private range (its VPC), for the API's outbound rule. */
  readonly databaseRange: pulumi.Input<string>;
  /** The gateway's reserved IP, for the API's outbound MQTT rule. */
  readonly gatewayIp: pulumi.Input<string>;
}

export class FleetNetwork extends pulumi.ComponentResource {
  readonly vpc: digitalocean.Vpc;
  /** Tag names: every droplet, gateway droplets, the API droplet. */
  readonly tags: {
    readonly fleet: pulumi.Output<string>;
    readonly gateway: pulumi.Output<string>;
    readonly api: pulumi.Output<string>;
  };
  readonly gatewayFirewall: digitalocean.Firewall;
  readonly apiFirewall: digitalocean.Firewall;

  constructor(name: string, args: FleetNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:FleetNetwork", name, {}, opts);
    const s = args.settings;
    const prefix = fleetPrefix();
    const parent = { parent: this };

    // The fleet's private network. Health, metrics and the EMQX dashboard are reachable
    // only from here (and by admins through SSH); the database is peered into it.
    this.vpc = new digitalocean.Vpc(
      `${name}-vpc`,
      { name: prefix, region: s.region, ipRange: s.vpcIpRange, description: "voice gateway fleet" },
      parent,
    );

    const tag = (suffix: string): pulumi.Output<string> =>
      new digitalocean.Tag(
        `${name}-tag-${suffix || "fleet"}`,
        { name: suffix ? `${prefix}-${suffix}` : prefix },
        parent,
      ).name;
    this.tags = { fleet: tag(""), gateway: tag("gateway"), api: tag("api") };

    // Gateway: public MQTT and the instances' UDP ports, nothing else from the internet.
    this.gatewayFirewall = new digitalocean.Firewall(
      `${name}-gateway-fw`,
      {
        name: `${prefix}-gateway`,
        tags: [this.tags.gateway],
        inboundRules: gatewayInbound(s).map(inbound),
        outboundRules: gatewayOutbound(s).map(outbound),
      },
      parent,
    );

    // API: the web app and the OTA over HTTP(S).
    this.apiFirewall = new digitalocean.Firewall(
      `${name}-api-fw`,
      {
        name: `${prefix}-api`,
        tags: [this.tags.api],
        inboundRules: apiInbound(s).map(inbound),
        outboundRules: apiOutbound<pulumi.Input<string>>(
          s,
          args.databaseRange,
          pulumi.interpolate`${args.gatewayIp}/32`,
        ).map(outbound),
      },
      parent,
    );

    this.registerOutputs({ vpcId: this.vpc.id });
  }
}

function inbound(r: InboundRule): digitalocean.types.input.FirewallInboundRule {
  return { protocol: r.protocol, portRange: r.portRange, sourceAddresses: [...r.sources] };
}

function outbound(r: OutboundRule<pulumi.Input<string>>): digitalocean.types.input.FirewallOutboundRule {
  return { protocol: r.protocol, portRange: r.portRange, destinationAddresses: [...r.destinations] };
}
