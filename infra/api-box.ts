/**
 * The API droplet: manager-api-node (from its release artifact, under PM2) and
 * manager-web's static build behind nginx. Its environment points the OTA at the
 * gateway's reserved IP (or at `<mqttDomain>:8883` once `otaMqttTls` is set) and holds the
 * database URL; both arrive in user data.
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { assertUserDataFits, type BundleRef, renderApiUserData } from "../cloud-init/render.ts";
import type { Settings } from "./config.ts";
import { fleetDropletArgs, SECRET_USER_DATA } from "./droplet.ts";
import type { Secrets } from "./secrets.ts";

export interface ApiBoxArgs {
  readonly settings: Settings;
  readonly secrets: Secrets;
  readonly dropletName: string;
  readonly vpcId: pulumi.Input<string>;
  readonly tags: readonly pulumi.Input<string>[];
  /** The gateway's reserved IP: the MQTT endpoint the OTA hands to devices. */
  readonly mqttHost: pulumi.Input<string>;
  /** A secret. */
  readonly databaseUrl: pulumi.Input<string>;
  /** The cluster's CA certificate (PEM) that databaseUrl's sslrootcert names. */
  readonly databaseCa: pulumi.Input<string>;
  /** Where first boot downloads Node, npm and PM2 (bundle-store.ts), and their hash. */
  readonly nodeRuntime: pulumi.Input<BundleRef>;
  /** What must exist before the droplet is created (the database peering and trusted source). */
  readonly dependsOn?: readonly pulumi.Resource[];
}

export class ApiBox extends pulumi.ComponentResource {
  readonly droplet: digitalocean.Droplet;
  /** The rendered cloud-config (a secret: database URL, signing key). */
  readonly userData: pulumi.Output<string>;

  constructor(name: string, args: ApiBoxArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:ApiBox", name, {}, opts);
    const s = args.settings;
    this.userData = pulumi.secret(
      pulumi
        .all([
          args.mqttHost,
          args.databaseUrl,
          args.secrets.mqttSigningKey,
          args.secrets.releaseToken,
          args.nodeRuntime,
          args.databaseCa,
        ])
        .apply(([mqttHost, databaseUrl, mqttSigningKey, releaseToken, nodeRuntime, databaseCa]) => {
          const userData = renderApiUserData({
            mqttHost,
            databaseUrl,
            databaseCa,
            mqttSigningKey,
            releaseToken,
            nodeRuntime,
            apiRelease: s.apiRelease,
            webRelease: s.webRelease,
            apiEntry: s.apiEntry,
            apiPort: s.apiPort,
            apiProxyPaths: s.apiProxyPaths,
            domain: s.domain,
            alertEmail: s.alertEmail,
            // Only once the operator checked the gateway's certificate (otaMqttTls, config.ts):
            // the `up` that creates the TLS listener keeps handing out the reserved IP's 1883.
            mqttTlsDomain: s.otaMqttTls ? s.mqttDomain : undefined,
          });
          assertUserDataFits(userData, "API");
          return userData;
        }),
    );

    this.droplet = new digitalocean.Droplet(
      name,
      fleetDropletArgs({
        settings: s,
        dropletName: args.dropletName,
        size: s.apiSize,
        vpcId: args.vpcId,
        tags: args.tags,
        userData: this.userData,
      }),
      { parent: this, additionalSecretOutputs: SECRET_USER_DATA, dependsOn: [...(args.dependsOn ?? [])] },
    );
    this.registerOutputs({ dropletId: this.droplet.id });
  }
}
