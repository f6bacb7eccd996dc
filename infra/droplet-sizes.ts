/**
 * Droplet size slugs checked against the provider SDK's own list, so a retired size fails
 * `npm run plan`, the tests and `pulumi preview` with the key's name, instead of failing
 * half-way through `pulumi up` when DigitalOcean refuses to create the droplet.
 *
 * Source: the SDK's `DropletSlug` enum (@pulumi/digitalocean types/enums). The provider
 * builds it (pulumi-digitalocean provider/resources.go) from two blocks: the sizes on sale,
 * then, after the comment "No longer supported", the retired ones, starting with the key
 * `Droplet16GB`. The enum object keeps that order, so the block boundary is that key. A
 * value listed in both blocks (e.g. `so1_5-2vcpu-16gb`) is on sale.
 */
import { types } from "@pulumi/digitalocean";

/** First key of the provider's "No longer supported" block. */
export const RETIRED_BLOCK_START = "Droplet16GB";

export interface SizeCatalog {
  readonly supported: ReadonlySet<string>;
  readonly retired: ReadonlySet<string>;
}

/** Splits an enum object (in declaration order) at the retired block. Pure. */
export function sizeCatalog(dropletSlug: Readonly<Record<string, string>>): SizeCatalog {
  const entries = Object.entries(dropletSlug);
  const boundary = entries.findIndex(([key]) => key === RETIRED_BLOCK_START);
  if (boundary < 0) {
    // An SDK upgrade that reorders the enum must not turn this check into a silent pass.
    throw new Error(
      `@pulumi/digitalocean: DropletSlug has no ${RETIRED_BLOCK_START} key, so retired sizes cannot be told ` +
        "from supported ones: update infra/droplet-sizes.ts for this SDK version",
    );
  }
  const supported = new Set(entries.slice(0, boundary).map(([, v]) => v));
  const retired = new Set(
    entries
      .slice(boundary)
      .map(([, v]) => v)
      .filter((v) => !supported.has(v)),
  );
  return { supported, retired };
}

/** The catalog of the installed SDK. */
export const DROPLET_SIZES: SizeCatalog = sizeCatalog(types.enums.DropletSlug);

/** Why a size cannot be used, or undefined when it is on sale. Pure. */
export function sizeProblem(slug: string, catalog: SizeCatalog = DROPLET_SIZES): string | undefined {
  if (catalog.supported.has(slug)) return undefined;
  if (catalog.retired.has(slug)) {
    return (
      `${JSON.stringify(slug)} is a retired droplet size (no longer sold; creating the droplet fails): ` +
      "pick a current one, e.g. s-8vcpu-32gb-amd or g-8vcpu-32gb for 8 vCPU / 32 GB (doctl compute size list)"
    );
  }
  return `${JSON.stringify(slug)} is not a droplet size the provider knows (doctl compute size list)`;
}
