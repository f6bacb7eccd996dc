/** Runs the whole program under mocks with the prod settings file, plus overrides. */
import path from "node:path";
import { storeGatewayBundle, storeNodeRuntime } from "../../cloud-init/bundle-runtime.ts";
import type { StoredBundle } from "../../cloud-init/render.ts";
import { DIST, ROOT } from "../../cloud-init/test/dist.ts";
import { createStack, type FleetStack } from "../fleet-stack.ts";
import { loadStackConfig, type StackConfig } from "../load-config.ts";
import { type FleetMocks, installMocks, type RecordedResource, settle } from "../mocks.ts";
import { readStackFile, standInSecrets } from "../stack-file.ts";

export { DIST, ROOT };
export const PROD_FILE = path.join(ROOT, "Pulumi.prod.yaml");

export const DROPLET = "digitalocean:index/droplet:Droplet";
export const FIREWALL = "digitalocean:index/firewall:Firewall";
export const BUNDLE_OBJECT = "digitalocean:index/spacesBucketObject:SpacesBucketObject";

let packed: StoredBundle | undefined;

/** dist/ packed as `pulumi up` packs it (once per test process: with a binary inside, packing takes a while). */
export function distBundle(): StoredBundle {
  packed ??= storeGatewayBundle(DIST, ROOT);
  return packed;
}

let runtime: StoredBundle | undefined;

/** The Node runtime object of the API droplet, as `pulumi up` packs it (once per test process). */
export function nodeRuntime(): StoredBundle {
  runtime ??= storeNodeRuntime(ROOT);
  return runtime;
}

export interface FleetRun {
  readonly mocks: FleetMocks;
  readonly fleet: FleetStack;
  readonly config: StackConfig;
  readonly secrets: Record<string, string>;
  /** Addresses the stack asked to be ready before moving the reserved IP, in order. */
  readonly readinessAsked: readonly string[];
  /** The recorded custom resource of that type and name. */
  find(type: string, name: string): RecordedResource;
}

export async function runFleet(
  overrides: Record<string, string> = {},
  bundle: StoredBundle = distBundle(),
  options: { gatewayReady?: (host: string, mocks: FleetMocks) => Promise<void> } = {},
): Promise<FleetRun> {
  const file = readStackFile(PROD_FILE);
  const settings = { ...file.config, ...overrides };
  const secrets = standInSecrets(settings);
  const mocks = await installMocks({
    config: { ...settings, ...secrets },
    secretKeys: Object.keys(secrets),
    region: settings.region ?? "",
  });
  const config = loadStackConfig({ allowPlaceholders: true });
  const readinessAsked: string[] = [];
  const fleet = createStack(config, bundle, {
    nodeRuntime: nodeRuntime(),
    gatewayReady: async (host) => {
      readinessAsked.push(host);
      await options.gatewayReady?.(host, mocks);
    },
  });
  await settle();
  return {
    mocks,
    fleet,
    config,
    secrets,
    readinessAsked,
    find(type, name) {
      const r = mocks.resources.find((x) => x.type === type && x.name === name);
      if (!r) throw new Error(`no ${type} named ${name}`);
      return r;
    },
  };
}
