/**
 * Where the gateway bundle lives outside user data: a DigitalOcean Spaces bucket that
 * `pulumi up` creates and fills by itself, with no manual step and no extra credential.
 *
 * - Spaces speaks the S3 API, which needs Spaces access keys, not the API token. The
 *   program creates its own key (SpacesKey, with the account's API token) and uses it
 *   through an explicit provider for the bucket and the object. Its secret is a secret in
 *   the state. A grant on one bucket cannot exist before the bucket, so the key has
 *   `fullaccess` (what creating a bucket needs); it lives only in Pulumi state.
 * - The bucket is private (no listing). The object is `public-read` under a
 *   content-addressed key, gateway/<sha256>.tar.gz: to fetch it one must know the hash,
 *   which only the bundle itself (or the secret user data) gives. The bundle holds code
 *   and the lockfile, no secret (secrets arrive in user data).
 * - A new bundle is a new key, so the object is replaced (the new one is uploaded before
 *   the old one is deleted) and the droplet's user data changes, which replaces the droplet
 *   (pinned slots keep theirs: see docs/runbook.md). The old object goes at the end of that
 *   `up`; a pinned droplet booted from it does not need it again (first boot runs once).
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { type BundleKind, type BundleRef, bundleObjectKey, type StoredBundle } from "../cloud-init/render.ts";
import type { Settings } from "./config.ts";

export interface BundleStoreArgs {
  readonly settings: Settings;
  /** Spaces bucket name: unique across all of DigitalOcean. */
  readonly bucketName: string;
  readonly bundle: StoredBundle;
  /** The Node runtime object of the API droplet: Node, npm and PM2 (cloud-init/bundle-runtime.ts). */
  readonly runtime: StoredBundle;
}

export class BundleStore extends pulumi.ComponentResource {
  readonly key: digitalocean.SpacesKey;
  readonly bucket: digitalocean.SpacesBucket;
  readonly object: digitalocean.SpacesBucketObject;
  /** URL and hash, for user data. */
  readonly ref: pulumi.Output<BundleRef>;
  readonly runtimeObject: digitalocean.SpacesBucketObject;
  /** URL and hash of the Node runtime object, for the API droplet's user data. */
  readonly runtimeRef: pulumi.Output<BundleRef>;

  constructor(name: string, args: BundleStoreArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:BundleStore", name, {}, opts);
    const { settings: s, bundle } = args;

    this.key = new digitalocean.SpacesKey(
      `${name}-key`,
      { name: `${args.bucketName}-pulumi`, grants: [{ bucket: "", permission: "fullaccess" }] },
      // The SDK marks secretKey a secret output itself (additionalSecretOutputs).
      { parent: this },
    );
    // The API token of the default provider (stack config or DIGITALOCEAN_TOKEN), plus the key.
    const token = new pulumi.Config("digitalocean").getSecret("token");
    const spaces = new digitalocean.Provider(
      `${name}-spaces`,
      {
        ...(token ? { token } : {}),
        spacesAccessId: this.key.accessKey,
        spacesSecretKey: pulumi.secret(this.key.secretKey),
      },
      { parent: this },
    );

    this.bucket = new digitalocean.SpacesBucket(
      `${name}-bucket`,
      { name: args.bucketName, region: s.region, acl: "private", forceDestroy: true },
      { parent: this, provider: spaces },
    );
    const upload = (resName: string, b: StoredBundle, kind: BundleKind): digitalocean.SpacesBucketObject =>
      new digitalocean.SpacesBucketObject(
        resName,
        {
          bucket: this.bucket.name,
          region: s.region,
          key: bundleObjectKey(b.sha256, kind),
          source: b.file,
          etag: b.md5,
          acl: "public-read",
          contentType: "application/gzip",
          // The name is the content: it never changes under this key.
          cacheControl: "public, max-age=31536000, immutable",
        },
        { parent: this, provider: spaces },
      );
    const refOf = (o: digitalocean.SpacesBucketObject, sha256: string): pulumi.Output<BundleRef> =>
      pulumi
        .all([this.bucket.bucketDomainName, o.key])
        .apply(([domain, objectKey]) => ({ url: `https://${domain}/${objectKey}`, sha256 }));
    this.object = upload(`${name}-object`, bundle, "gateway");
    this.ref = refOf(this.object, bundle.sha256);
    this.runtimeObject = upload(`${name}-runtime-object`, args.runtime, "runtime");
    this.runtimeRef = refOf(this.runtimeObject, args.runtime.sha256);
    this.registerOutputs({ url: this.ref.apply((r) => r.url) });
  }
}
