/**
 * The whole program under Pulumi's mocks with the prod settings: each resource's key
 * properties, the firewall allowlist, the reserved IP's dependency on the droplet, and
 * that secrets stay secrets.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { readUserDataFiles } from "../../cloud-init/render.ts";
import { MOCK_DATABASE } from "../mocks.ts";
import { BUNDLE_OBJECT, DROPLET, FIREWALL, type FleetRun, runFleet } from "./fleet-harness.ts";

interface Rule {
  protocol: string;
  portRange?: string;
  sourceAddresses?: string[];
  destinationAddresses?: string[];
}

const ANYWHERE = ["0.0.0.0/0", "::/0"];

/**
 * The allowlist, written from the issue rather than from firewall-rules.ts: `open` may
 * come from anywhere, `admin` only from the admin CIDRs, `internal` from the VPC or the
 * admins. Returns a line per inbound rule that opens anything else.
 */
function inboundViolations(
  rules: Rule[],
  allowed: { open: string[]; admin: string[]; internal: string[] },
  nets: { vpc: string; admins: string[] },
): string[] {
  const bad: string[] = [];
  for (const r of rules) {
    const what = `${r.protocol}${r.portRange ? ` ${r.portRange}` : ""}`;
    const sources = r.sourceAddresses ?? [];
    const only = (ok: string[]) => sources.length > 0 && sources.every((x) => ok.includes(x));
    if (allowed.open.includes(what)) {
      if (!only(ANYWHERE)) bad.push(`${what} from ${sources}`);
    } else if (allowed.admin.includes(what)) {
      if (!only(nets.admins)) bad.push(`${what} from ${sources} (admins only)`);
    } else if (allowed.internal.includes(what)) {
      if (!only([nets.vpc, ...nets.admins])) bad.push(`${what} from ${sources} (VPC and admins only)`);
    } else {
      bad.push(`${what} is not on the allowed list`);
    }
  }
  return bad;
}

describe("the stack under mocks (prod settings)", () => {
  let run: FleetRun;
  before(async () => {
    run = await runFleet();
  });

  test("droplets: sizes, region, image, VPC, tags, monitoring, SSH keys", () => {
    const vpc = run.find("digitalocean:index/vpc:Vpc", "network-vpc");
    assert.equal(vpc.inputs.region, "fra1");
    assert.equal(vpc.inputs.ipRange, "10.60.0.0/20");
    const gw = run.find(DROPLET, "gateway-a");
    const api = run.find(DROPLET, "api");
    assert.equal(gw.inputs.size, "s-8vcpu-32gb-amd");
    assert.equal(api.inputs.size, "s-2vcpu-4gb");
    for (const d of [gw, api]) {
      assert.equal(d.inputs.region, "fra1");
      assert.equal(d.inputs.image, "ubuntu-24-04-x64");
      assert.equal(d.inputs.vpcUuid, vpc.id);
      assert.equal(d.inputs.monitoring, true);
      assert.deepEqual(d.inputs.sshKeys, ["00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"]);
    }
    assert.deepEqual(gw.inputs.tags, ["voice-fleet-prod", "voice-fleet-prod-gateway"]);
    assert.deepEqual(api.inputs.tags, ["voice-fleet-prod", "voice-fleet-prod-api"]);
    assert.equal(gw.inputs.name, "voice-fleet-prod-gateway-a");
  });

  test("no inbound rule opens anything beyond the allowed list", () => {
    const s = run.config.settings;
    const nets = { vpc: s.vpcIpRange, admins: [...s.adminCidrs] };
    const gw = run.find(FIREWALL, "network-gateway-fw");
    const api = run.find(FIREWALL, "network-api-fw");
    assert.deepEqual(gw.inputs.tags, ["voice-fleet-prod-gateway"]);
    assert.deepEqual(api.inputs.tags, ["voice-fleet-prod-api"]);
    const gatewayAllowed = {
      open: ["tcp 1883", "udp 8881-8884"],
      admin: ["tcp 22"],
      internal: ["tcp 9001-9004", "tcp 18083", "icmp"],
    };
    const apiAllowed = { open: ["tcp 80", "tcp 443"], admin: ["tcp 22"], internal: ["icmp"] };
    assert.deepEqual(inboundViolations(gw.inputs.inboundRules as Rule[], gatewayAllowed, nets), []);
    assert.deepEqual(inboundViolations(api.inputs.inboundRules as Rule[], apiAllowed, nets), []);
    // Both public ports of the gateway are there (and the check itself catches extras).
    const open = (gw.inputs.inboundRules as Rule[]).filter((r) => r.sourceAddresses?.includes("0.0.0.0/0"));
    assert.deepEqual(open.map((r) => `${r.protocol} ${r.portRange}`).sort(), ["tcp 1883", "udp 8881-8884"]);
    const extra: Rule[] = [
      { protocol: "tcp", portRange: "18083", sourceAddresses: ANYWHERE },
      { protocol: "tcp", portRange: "5432", sourceAddresses: nets.admins },
      { protocol: "tcp", portRange: "22", sourceAddresses: ["0.0.0.0/0"] },
    ];
    assert.equal(inboundViolations(extra, gatewayAllowed, nets).length, 3);
  });

  test("outbound rules are explicit; the API reaches Postgres and MQTT only where they are", () => {
    for (const name of ["network-gateway-fw", "network-api-fw"]) {
      const out = run.find(FIREWALL, name).inputs.outboundRules as Rule[];
      assert.ok(out.length > 0);
      for (const r of out) assert.ok((r.destinationAddresses ?? []).length > 0, `${name}: ${r.protocol}`);
    }
    const apiOut = run.find(FIREWALL, "network-api-fw").inputs.outboundRules as Rule[];
    const pg = apiOut.find((r) => r.portRange === "25060-25061");
    assert.deepEqual(pg?.destinationAddresses, [MOCK_DATABASE.vpcRange]);
    const mqtt = apiOut.find((r) => r.portRange === "1883");
    assert.deepEqual(mqtt?.destinationAddresses, ["203.0.113.50/32"]);
  });

  test("the reserved IP is protected and its assignment depends on the active droplet", () => {
    const ip = run.find("digitalocean:index/reservedIp:ReservedIp", "gateway-ip");
    assert.equal(ip.protect, true);
    assert.equal(ip.inputs.region, "fra1");
    const gw = run.find(DROPLET, "gateway-a");
    const assignment = run.find(
      "digitalocean:index/reservedIpAssignment:ReservedIpAssignment",
      "gateway-ip-assignment",
    );
    assert.equal(assignment.inputs.dropletId, Number(gw.id));
    assert.equal(assignment.inputs.ipAddress, "203.0.113.50");
    assert.ok(
      assignment.dependencies.includes(gw.urn),
      `dependencies: ${assignment.dependencies.join(", ")}`,
    );
  });

  test("the API droplet has its own protected reserved IP, assigned to it (DNS survives a replacement)", () => {
    const ip = run.find("digitalocean:index/reservedIp:ReservedIp", "api-ip");
    assert.equal(ip.protect, true);
    assert.equal(ip.inputs.region, "fra1");
    const api = run.find(DROPLET, "api");
    const assignment = run.find(
      "digitalocean:index/reservedIpAssignment:ReservedIpAssignment",
      "api-ip-assignment",
    );
    assert.equal(assignment.inputs.dropletId, Number(api.id));
    assert.equal(assignment.inputs.ipAddress, ip.state.ipAddress);
    assert.notEqual(
      ip.state.ipAddress,
      run.find("digitalocean:index/reservedIp:ReservedIp", "gateway-ip").state.ipAddress,
    );
    assert.ok(
      assignment.dependencies.includes(api.urn),
      `dependencies: ${assignment.dependencies.join(", ")}`,
    );
  });

  test("user data is a secret: input, output, and the component's value", async () => {
    for (const name of ["gateway-a", "api"]) {
      const d = run.find(DROPLET, name);
      assert.deepEqual(d.secretInputs, ["userData"], name);
      assert.deepEqual(d.additionalSecretOutputs, ["userData"], name);
    }
    const box = run.fleet.gateways.get("a");
    assert.equal(await pulumi.isSecret(box?.userData as pulumi.Output<string>), true);
    assert.equal(await pulumi.isSecret(run.fleet.api.userData), true);
  });

  test("the boxes get the reserved IP: gateways tell it to devices, the API's OTA hands it out", () => {
    const gwFiles = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData));
    const gatewayEnv = gwFiles.get("/etc/voice-gateway/gateway.env")?.content.toString() ?? "";
    assert.match(gatewayEnv, /^PUBLIC_HOST=203\.0\.113\.50$/m);
    const apiFiles = readUserDataFiles(String(run.find(DROPLET, "api").inputs.userData));
    const apiEnv = apiFiles.get("/etc/manager-api/api.env")?.content.toString() ?? "";
    assert.match(apiEnv, /^MQTT_HOST=203\.0\.113\.50$/m);
    assert.match(apiEnv, /^MQTT_ENDPOINT=203\.0\.113\.50:1883$/m);
    assert.match(
      apiEnv,
      /^DATABASE_URL=postgresql:\/\/doadmin:mock-db-password@private-mock-db\.b\.db\.ondigitalocean\.com:25060\/defaultdb\?sslmode=verify-full&sslrootcert=\/etc\/manager-api\/db-ca\.crt$/m,
    );
  });

  test("Postgres TLS: the API checks the server against the cluster's own CA (getDatabaseCa)", () => {
    const apiFiles = readUserDataFiles(String(run.find(DROPLET, "api").inputs.userData));
    const ca = apiFiles.get("/etc/manager-api/db-ca.crt");
    assert.equal(ca?.content.toString(), MOCK_DATABASE.caCertificate);
    assert.equal(ca?.owner, "root:root");
    assert.equal(ca?.permissions, "0644");
  });

  test("Postgres: the API's tag is trusted, the fleet VPC is peered with the cluster's", () => {
    const fw = run.find("digitalocean:index/databaseFirewall:DatabaseFirewall", "database-firewall");
    assert.equal(fw.inputs.clusterId, MOCK_DATABASE.id);
    assert.deepEqual(fw.inputs.rules, [{ type: "tag", value: "voice-fleet-prod-api" }]);
    assert.deepEqual(run.find(DROPLET, "api").inputs.tags, ["voice-fleet-prod", "voice-fleet-prod-api"]);
    const peering = run.find("digitalocean:index/vpcPeering:VpcPeering", "database-peering");
    assert.deepEqual(peering.inputs.vpcIds, [
      run.find("digitalocean:index/vpc:Vpc", "network-vpc").id,
      MOCK_DATABASE.privateNetworkUuid,
    ]);
  });

  test("the API droplet is created only once the peering and its trusted source exist", () => {
    const api = run.find(DROPLET, "api");
    const peering = run.find("digitalocean:index/vpcPeering:VpcPeering", "database-peering");
    const fw = run.find("digitalocean:index/databaseFirewall:DatabaseFirewall", "database-firewall");
    assert.ok(api.dependencies.includes(peering.urn), `dependencies: ${api.dependencies.join(", ")}`);
    assert.ok(api.dependencies.includes(fw.urn), `dependencies: ${api.dependencies.join(", ")}`);
    // Registered in that order too: nothing of the database waits for the droplet.
    const order = run.mocks.resources.map((r) => r.urn);
    assert.ok(order.indexOf(peering.urn) < order.indexOf(api.urn));
    assert.ok(order.indexOf(fw.urn) < order.indexOf(api.urn));
  });

  test("monitoring: CPU, memory and disk alerts per role to the alert address; one Project of droplets", () => {
    const alerts = run.mocks.ofType("digitalocean:index/monitorAlert:MonitorAlert");
    const seen = alerts.map(
      (a) => `${(a.inputs.tags as string[]).join()} ${String(a.inputs.type).split("/").pop()}`,
    );
    assert.deepEqual(seen.sort(), [
      "voice-fleet-prod-api cpu",
      "voice-fleet-prod-api disk_utilization_percent",
      "voice-fleet-prod-api memory_utilization_percent",
      "voice-fleet-prod-gateway cpu",
      "voice-fleet-prod-gateway disk_utilization_percent",
      "voice-fleet-prod-gateway memory_utilization_percent",
    ]);
    for (const a of alerts) assert.deepEqual(a.inputs.alerts, { emails: ["oncall@example.com"] });
    const project = run.find("digitalocean:index/project:Project", "monitoring-project");
    const gw = run.find(DROPLET, "gateway-a");
    // No reserved IP in the Project: the provider would try to move it on every later up (412).
    assert.deepEqual(project.inputs.resources, [
      `do:droplet:${gw.id}`,
      `do:droplet:${run.find(DROPLET, "api").id}`,
    ]);
    const ipUrn = run.find("digitalocean:index/reservedIp:ReservedIp", "gateway-ip").state.reservedIpUrn;
    assert.ok(!(project.inputs.resources as string[]).includes(String(ipUrn)));
  });

  test("the bundle: one content-addressed object in a private bucket, named in user data by URL and hash", () => {
    const key = run.find("digitalocean:index/spacesKey:SpacesKey", "bundle-key");
    assert.deepEqual(key.inputs.grants, [{ bucket: "", permission: "fullaccess" }]);
    assert.ok(key.additionalSecretOutputs.includes("secretKey"), "the SDK keeps the key's secret a secret");
    const provider = run.find("pulumi:providers:digitalocean", "bundle-spaces");
    assert.equal(provider.inputs.spacesAccessId, key.state.accessKey);
    assert.ok(provider.secretInputs.includes("spacesSecretKey"), "the Spaces secret stays a secret");
    const bucket = run.find("digitalocean:index/spacesBucket:SpacesBucket", "bundle-bucket");
    assert.deepEqual(
      [bucket.inputs.name, bucket.inputs.region, bucket.inputs.acl],
      ["voice-fleet-prod-bundles", "fra1", "private"],
    );
    const object = run.find(BUNDLE_OBJECT, "bundle-object");
    const bytes = readFileSync(String(object.inputs.source));
    const sha = createHash("sha256").update(bytes).digest("hex");
    assert.equal(object.inputs.key, `gateway/${sha}.tar.gz`);
    assert.equal(object.inputs.acl, "public-read");
    assert.equal(object.inputs.etag, createHash("md5").update(bytes).digest("hex"));
    const settings =
      readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData))
        .get("/etc/voice-gateway/bootstrap.env")
        ?.content.toString() ?? "";
    assert.match(
      settings,
      new RegExp(
        `^BUNDLE_URL='https://voice-fleet-prod-bundles\\.fra1\\.digitaloceanspaces\\.com/gateway/${sha}\\.tar\\.gz'$`,
        "m",
      ),
    );
    assert.match(settings, new RegExp(`^BUNDLE_SHA256='${sha}'$`, "m"));
  });

  test("outputs: private health URLs, one per instance", async () => {
    const urls = await new Promise<string[]>((resolve) =>
      run.fleet.gateways.get("a")?.healthUrls.apply(resolve),
    );
    const ip = run.find(DROPLET, "gateway-a").state.ipv4AddressPrivate;
    assert.deepEqual(
      urls,
      [9001, 9002, 9003, 9004].map((p) => `http://${ip}:${p}/health`),
    );
  });
});
