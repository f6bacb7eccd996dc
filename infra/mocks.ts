/**
 * Runs the program with Pulumi's own mocks: no cloud, no CLI. Records every resource
 * the program registers (inputs as the engine would receive them, plus the options that
 * matter: parent, dependencies, protect, additionalSecretOutputs, ignoreChanges,
 * replaceOnChanges), and answers the database lookups with stand-ins. Shared by `npm run plan` and the tests.
 */
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks.js";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly urn: string;
  /** Inputs with secrets unwrapped; `secretInputs` says which were secret. */
  readonly inputs: Record<string, unknown>;
  readonly secretInputs: readonly string[];
  readonly id: string;
  readonly state: Record<string, unknown>;
  readonly parent: string;
  readonly dependencies: readonly string[];
  readonly protect: boolean;
  readonly additionalSecretOutputs: readonly string[];
  readonly ignoreChanges: readonly string[];
  readonly replaceOnChanges: readonly string[];
}

/** Stand-ins for the existing database cluster (what `pulumi preview` looks up for real). */
export const MOCK_DATABASE = {
  id: "mock-db-cluster-uuid",
  privateNetworkUuid: "mock-db-vpc-uuid",
  vpcRange: "10.114.0.0/20",
  privateHost: "private-mock-db.b.db.ondigitalocean.com",
  port: 25060,
  user: "doadmin",
  password: "mock-db-password",
  database: "defaultdb",
  /** What getDatabaseCa returns: the cluster's own CA, PEM. */
  caCertificate: "-----BEGIN CERTIFICATE-----\nbW9jayBjbHVzdGVyIENB\n-----END CERTIFICATE-----\n",
};

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

interface PendingOptions {
  urn: string;
  parent: string;
  dependencies: string[];
  protect: boolean;
  additionalSecretOutputs: string[];
  ignoreChanges: string[];
  replaceOnChanges: string[];
}

export class FleetMocks implements pulumi.runtime.Mocks {
  readonly resources: RecordedResource[] = [];
  readonly #pending = new Map<string, PendingOptions[]>();
  #nextId = 400_000_001;

  constructor(private readonly region: string) {}

  /** Called by the monitor patch for each RegisterResource request, before newResource. */
  noteOptions(type: string, name: string, options: PendingOptions): void {
    const key = `${type}::${name}`;
    this.#pending.set(key, [...(this.#pending.get(key) ?? []), options]);
  }

  newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
    const { values: inputs, secrets } = unwrapSecrets(args.inputs as Record<string, unknown>);
    const id = String(this.#nextId++);
    const state = { ...inputs, ...computed(args.type, id, this.resources.length, inputs, args.name) };
    const key = `${args.type}::${args.name}`;
    const options = this.#pending.get(key)?.shift() ?? {
      urn: "",
      parent: "",
      dependencies: [],
      protect: false,
      additionalSecretOutputs: [],
      ignoreChanges: [],
      replaceOnChanges: [],
    };
    this.resources.push({
      type: args.type,
      name: args.name,
      inputs,
      secretInputs: secrets,
      id,
      state,
      ...options,
    });
    return { id, state };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    switch (args.token) {
      case "digitalocean:index/getDatabaseCluster:getDatabaseCluster":
        return {
          ...MOCK_DATABASE,
          name: (args.inputs as { name: string }).name,
          region: this.region,
          uri: "postgresql://mock",
          privateUri: "postgresql://mock",
        };
      case "digitalocean:index/getDatabaseUser:getDatabaseUser":
        return {
          name: (args.inputs as { name: string }).name,
          password: "mock-user-password",
          role: "normal",
        };
      case "digitalocean:index/getDatabaseCa:getDatabaseCa":
        return {
          clusterId: MOCK_DATABASE.id,
          id: MOCK_DATABASE.id,
          certificate: MOCK_DATABASE.caCertificate,
        };
      case "digitalocean:index/getVpc:getVpc":
        return { id: MOCK_DATABASE.privateNetworkUuid, ipRange: MOCK_DATABASE.vpcRange, region: this.region };
      default:
        throw new Error(`no mock for invoke ${args.token}`);
    }
  }

  /** Resources of one type, in registration order. */
  ofType(type: string): RecordedResource[] {
    return this.resources.filter((r) => r.type === type);
  }

  byName(name: string): RecordedResource {
    const found = this.resources.find((r) => r.name === name);
    if (!found) throw new Error(`no resource named ${name}`);
    return found;
  }
}

/** Values the cloud would compute, shaped like the provider's outputs. */
function computed(
  type: string,
  id: string,
  n: number,
  inputs: Record<string, unknown>,
  name = "",
): Record<string, unknown> {
  switch (type) {
    case "digitalocean:index/spacesBucket:SpacesBucket":
      return {
        bucketDomainName: `${inputs.name}.${inputs.region}.digitaloceanspaces.com`,
        urn: `do:space:${inputs.name}`,
      };
    case "digitalocean:index/spacesKey:SpacesKey":
      return { accessKey: `MOCKSPACESKEY${id}`, secretKey: "mock-spaces-secret" };
    case "digitalocean:index/droplet:Droplet":
      return {
        ipv4Address: `198.51.100.${10 + n}`,
        ipv4AddressPrivate: `10.60.0.${10 + n}`,
        dropletUrn: `do:droplet:${id}`,
        status: "active",
      };
    case "digitalocean:index/reservedIp:ReservedIp": {
      // The gateway's keeps the address the tests know; any other (the API's) gets its own.
      const ip = name === "gateway-ip" ? "203.0.113.50" : "203.0.113.60";
      return { ipAddress: ip, reservedIpUrn: `do:reservedip:${ip}` };
    }
    case "digitalocean:index/vpc:Vpc":
      return { urn: `do:vpc:${id}` };
    default:
      return {};
  }
}

function unwrapSecrets(inputs: Record<string, unknown>): {
  values: Record<string, unknown>;
  secrets: string[];
} {
  const secrets: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(inputs)) {
    if (isSecret(v)) secrets.push(k);
    values[k] = deepUnwrap(v);
  }
  return { values, secrets };
}

function isSecret(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

function deepUnwrap(v: unknown): unknown {
  if (isSecret(v)) return deepUnwrap(v.value);
  if (Array.isArray(v)) return v.map(deepUnwrap);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deepUnwrap(x)]));
  }
  return v;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getProtect(): boolean | undefined;
  getAdditionalsecretoutputsList(): string[];
  getIgnorechangesList(): string[];
  getReplaceonchangesList(): string[];
}

interface UrnMaker {
  newUrn(parent: string, type: string, name: string): string;
}

let patched: FleetMocks | undefined;

/**
 * Installs the mocks and the stack config. `config` maps bare keys (`region`) to raw
 * values (structured ones as JSON text), as Pulumi passes them to a program.
 */
export async function installMocks(options: {
  config: Record<string, string>;
  secretKeys: readonly string[];
  region: string;
  stack?: string;
}): Promise<FleetMocks> {
  const mocks = new FleetMocks(options.region);
  const config = Object.fromEntries(Object.entries(options.config).map(([k, v]) => [`voice-fleet:${k}`, v]));
  pulumi.runtime.setAllConfig(
    config,
    options.secretKeys.map((k) => `voice-fleet:${k}`),
  );
  if (!patched) {
    // Record the options of each RegisterResource request: the mocks API passes only inputs.
    const original = MockMonitor.prototype.registerResource;
    MockMonitor.prototype.registerResource = function (
      this: MockMonitor,
      req: RegisterRequest,
      callback: (err: unknown, response: unknown) => void,
    ) {
      patched?.noteOptions(req.getType(), req.getName(), {
        urn: (this as unknown as UrnMaker).newUrn(req.getParent(), req.getType(), req.getName()),
        parent: req.getParent(),
        dependencies: req.getDependenciesList(),
        protect: req.getProtect() === true,
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        ignoreChanges: req.getIgnorechangesList(),
        replaceOnChanges: req.getReplaceonchangesList(),
      });
      return original.call(this, req, callback);
    };
  }
  patched = mocks;
  await pulumi.runtime.setMocks(mocks, "voice-fleet", options.stack ?? "prod", false);
  return mocks;
}

/** Waits until every registration and invoke the program started has reached the mocks. */
export async function settle(): Promise<void> {
  // What runtime.disconnect() awaits, without disconnecting (the SDK exports it untyped).
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
}
