/**
 * The existing managed Postgres: looked up by name (never created or changed here), made
 * reachable from the fleet's VPC through a peering, and told which droplets it trusts.
 * The gateways do not use the database; only the API droplet (by its tag) is a trusted source.
 *
 * Both exist before the API droplet is created (stack.ts makes the droplet depend on them):
 * DigitalOcean adds the peering's routes only to droplets created in an already peered VPC,
 * and the trusted source is the API's tag rather than its droplet id, so it can be
 * registered first and keeps covering a replaced API droplet.
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { DATABASE_CA_PATH } from "../cloud-init/database-tls.ts";
import { overlaps, parseCidr } from "./cidr.ts";
import type { Settings } from "./config.ts";

export interface DatabaseLookup {
  readonly clusterId: pulumi.Output<string>;
  readonly clusterRegion: pulumi.Output<string>;
  /** The VPC the cluster lives in, and its address range. */
  readonly clusterVpcId: pulumi.Output<string>;
  readonly clusterRange: pulumi.Output<string>;
  /** postgresql://… over the private network, verified against the cluster's CA. A secret. */
  readonly connectionString: pulumi.Output<string>;
  /** The cluster's CA certificate (PEM), which the connection string's sslrootcert names. */
  readonly caCertificate: pulumi.Output<string>;
}

export interface ConnectionParts {
  readonly user: string;
  readonly password: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
}

/**
 * A libpq URL; user and password are percent-encoded. TLS with the server checked against
 * the cluster's CA (its file on the API droplet) and its host name: `verify-full` does that
 * in libpq and in node-postgres alike. `sslmode=require`, what DigitalOcean's own connection
 * strings say, does not: libpq then checks nothing, and node-postgres (pg-connection-string
 * 2.4.0 and later, brianc/node-postgres packages/pg-connection-string/index.js) checks against
 * Node's default CAs, which DigitalOcean's CA is not in: the connection fails with
 * "self-signed certificate in certificate chain".
 */
export function connectionUrl(p: ConnectionParts): string {
  const auth = `${encodeURIComponent(p.user)}:${encodeURIComponent(p.password)}`;
  const tls = `sslmode=verify-full&sslrootcert=${DATABASE_CA_PATH}`;
  return `postgresql://${auth}@${p.host}:${p.port}/${encodeURIComponent(p.database)}?${tls}`;
}

/** Looks the cluster up; fails preview if it is missing or its VPC overlaps ours. */
export function lookupDatabase(s: Settings, parent?: pulumi.Resource): DatabaseLookup {
  const opts = parent ? { parent } : {};
  const cluster = digitalocean.getDatabaseClusterOutput({ name: s.databaseClusterName }, opts);
  const clusterVpc = digitalocean.getVpcOutput({ id: cluster.privateNetworkUuid }, opts);
  const clusterRange = clusterVpc.ipRange.apply((range) => {
    const theirs = parseCidr(range);
    const ours = parseCidr(s.vpcIpRange);
    if (theirs && ours && overlaps(theirs, ours)) {
      throw new Error(
        `voice-fleet:vpcIpRange ${s.vpcIpRange} overlaps the database's VPC ${range}: ` +
          "peering needs disjoint ranges; pick another private range",
      );
    }
    return range;
  });
  const user = s.databaseUser
    ? digitalocean.getDatabaseUserOutput({ clusterId: cluster.id, name: s.databaseUser }, opts)
    : undefined;
  const connectionString = pulumi.secret(
    pulumi.all([cluster, user?.password]).apply(([c, userPassword]) =>
      connectionUrl({
        user: s.databaseUser ?? c.user,
        password: s.databaseUser ? (userPassword ?? "") : c.password,
        host: c.privateHost,
        port: c.port,
        database: s.databaseName ?? c.database,
      }),
    ),
  );
  // The provider's digitalocean_database_ca (GET /v2/databases/{id}/ca): a public certificate.
  const caCertificate = digitalocean.getDatabaseCaOutput({ clusterId: cluster.id }, opts).certificate;
  return {
    clusterId: cluster.id,
    clusterRegion: cluster.region,
    clusterVpcId: cluster.privateNetworkUuid,
    clusterRange,
    connectionString,
    caCertificate,
  };
}

export interface DatabaseAccessArgs {
  readonly settings: Settings;
  readonly lookup: DatabaseLookup;
  readonly vpcId: pulumi.Input<string>;
  /** DigitalOcean name of the peering (unique in the account). */
  readonly peeringName: string;
  /** Tags whose droplets may connect: the API role's tag. */
  readonly trustedTags: readonly pulumi.Input<string>[];
}

export class DatabaseAccess extends pulumi.ComponentResource {
  readonly peering: digitalocean.VpcPeering;
  readonly firewall: digitalocean.DatabaseFirewall;

  constructor(name: string, args: DatabaseAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:DatabaseAccess", name, {}, opts);
    const { settings: s, lookup } = args;

    // The cluster stays in its own VPC; peering lets the API reach its private host.
    this.peering = new digitalocean.VpcPeering(
      `${name}-peering`,
      { name: args.peeringName, vpcIds: [args.vpcId, lookup.clusterVpcId] },
      { parent: this },
    );

    // Trusted sources. DigitalOcean replaces the cluster's whole list with this one, so
    // every source that must keep access (the old monolith during the migration, a
    // laptop) is listed in voice-fleet:databaseTrustedSources.
    this.firewall = new digitalocean.DatabaseFirewall(
      `${name}-firewall`,
      {
        clusterId: lookup.clusterId,
        rules: [
          ...args.trustedTags.map((tag) => ({ type: "tag", value: tag })),
          ...s.databaseTrustedSources.map((r) => ({ type: r.type, value: r.value })),
        ],
      },
      { parent: this },
    );

    this.registerOutputs({});
  }
}
