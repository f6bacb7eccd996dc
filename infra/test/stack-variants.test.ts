/** Settings other than prod's: slots, instance count, database user, and what must fail. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { packBundle, readDistBundle, readUserDataFiles } from "../../cloud-init/render.ts";
import type { FleetMocks } from "../mocks.ts";
import { BUNDLE_OBJECT, DIST, DROPLET, FIREWALL, runFleet } from "./fleet-harness.ts";

const ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment";

interface Rule {
  protocol: string;
  portRange?: string;
}

/** Two gateway slots: b active, a pinned (the rotation's middle step). */
function twoSlotsAPinned(): ReturnType<typeof runFleet> {
  return runFleet({
    gatewaySlots: JSON.stringify(["a", "b"]),
    gatewayActiveSlot: "b",
    gatewayPinnedSlots: JSON.stringify(["a"]),
  });
}

describe("stack variants under mocks", () => {
  test("two slots: two gateway droplets, the reserved IP on the active one, the pinned one kept", async () => {
    const run = await twoSlotsAPinned();
    const a = run.find(DROPLET, "gateway-a");
    const b = run.find(DROPLET, "gateway-b");
    assert.equal(b.inputs.name, "voice-fleet-prod-gateway-b");
    const assignment = run.find(ASSIGNMENT, "gateway-ip-assignment");
    assert.equal(assignment.inputs.dropletId, Number(b.id));
    assert.ok(assignment.dependencies.includes(b.urn));
    assert.ok(!assignment.dependencies.includes(a.urn));
    // Both boxes are the same machine: same user data, same firewall (by tag)...
    assert.equal(a.inputs.userData, b.inputs.userData);
    assert.deepEqual(a.inputs.tags, b.inputs.tags);
    // ...but the pinned one keeps the user data it booted with (no replacement while it serves).
    assert.ok(a.ignoreChanges.includes("userData"), `ignoreChanges: ${a.ignoreChanges.join(", ")}`);
    assert.deepEqual(b.ignoreChanges, []);
  });

  test("a new gatewaySize replaces the gateway droplet instead of resizing the one that serves", async () => {
    // The provider updates `size` in place: DropletActions.PowerOff (a hard power-off), then
    // Resize, then power on (terraform-provider-digitalocean, resourceDigitalOceanDropletUpdate);
    // DigitalOcean cannot resize a running droplet nor shrink its disk. In place, that is the
    // droplet holding the reserved IP switched off mid-session, with no readiness wait.
    // Replaced, it is the rotation every other change takes: new droplet, readiness, IP moves.
    const run = await twoSlotsAPinned();
    const a = run.find(DROPLET, "gateway-a");
    const b = run.find(DROPLET, "gateway-b");
    assert.ok(b.replaceOnChanges.includes("size"), `replaceOnChanges: ${b.replaceOnChanges.join(", ")}`);
    // A pinned slot serves while another rolls: a size change must neither resize nor replace it.
    assert.ok(a.ignoreChanges.includes("size"), `ignoreChanges: ${a.ignoreChanges.join(", ")}`);
  });

  test("a new sshKeyFingerprints or image does not replace the pinned slot that serves", async () => {
    // The provider forces a new droplet for `ssh_keys` and `image` as for `user_data`
    // (ForceNew in terraform-provider-digitalocean, resource_droplet.go). A pinned slot
    // serves while another rolls (docs/runbook.md, "Without downtime"); replaced, it would
    // boot again from the user data it was pinned with, every device on it cut off.
    const run = await twoSlotsAPinned();
    const a = run.find(DROPLET, "gateway-a");
    const b = run.find(DROPLET, "gateway-b");
    for (const key of ["sshKeys", "image"]) {
      assert.ok(a.ignoreChanges.includes(key), `pinned ignoreChanges: ${a.ignoreChanges.join(", ")}`);
      assert.ok(!b.ignoreChanges.includes(key), `unpinned ignoreChanges: ${b.ignoreChanges.join(", ")}`);
    }
  });

  test("the instance count drives firewall ports, health ports and the ecosystem", async () => {
    const run = await runFleet({ gatewayInstances: "2", firstUdpPort: "9901" });
    const inbound = run.find(FIREWALL, "network-gateway-fw").inputs.inboundRules as Rule[];
    const ports = inbound.map((r) => `${r.protocol} ${r.portRange ?? ""}`);
    assert.ok(ports.includes("udp 9901-9902"), ports.join(", "));
    assert.ok(ports.includes("tcp 9001-9002"), ports.join(", "));
    const files = readUserDataFiles(String(run.find(DROPLET, "gateway-a").inputs.userData));
    const eco = files.get("/opt/voice-gateway/ecosystem.config.cjs")?.content.toString() ?? "";
    assert.deepEqual(eco.match(/UDP_PORT: "\d+"/g), ['UDP_PORT: "9901"', 'UDP_PORT: "9902"']);
  });

  test("a named database user: its own password from the cluster, in the API's DATABASE_URL", async () => {
    const run = await runFleet({ databaseUser: "manager", databaseName: "xiaozhi" });
    const files = readUserDataFiles(String(run.find(DROPLET, "api").inputs.userData));
    const env = files.get("/etc/manager-api/api.env")?.content.toString() ?? "";
    assert.match(
      env,
      /^DATABASE_URL=postgresql:\/\/manager:mock-user-password@[^/]+:25060\/xiaozhi\?sslmode=verify-full&sslrootcert=\/etc\/manager-api\/db-ca\.crt$/m,
    );
  });

  test("the reserved IP moves only once the new gateway droplet is ready", async () => {
    const assignments = (mocks: FleetMocks) =>
      mocks.ofType(ASSIGNMENT).filter((a) => a.name === "gateway-ip-assignment").length;
    let seenWhileWaiting: { droplets: string[]; assignments: number } | undefined;
    const run = await runFleet({}, undefined, {
      gatewayReady: async (_host, mocks) => {
        // Give the engine every chance to register the assignment early.
        for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
        seenWhileWaiting = {
          droplets: mocks.ofType(DROPLET).map((d) => d.name),
          assignments: assignments(mocks),
        };
      },
    });
    const gw = run.find(DROPLET, "gateway-a");
    assert.deepEqual(run.readinessAsked, [gw.state.ipv4Address], "asked about the new droplet's own address");
    assert.ok(seenWhileWaiting?.droplets.includes("gateway-a"));
    assert.equal(seenWhileWaiting?.assignments, 0, "no assignment while the droplet is not ready");
    assert.equal(run.find(ASSIGNMENT, "gateway-ip-assignment").inputs.dropletId, Number(gw.id));
  });

  test("gatewayReadyTimeoutMinutes 0: no wait", async () => {
    const run = await runFleet({ gatewayReadyTimeoutMinutes: "0" });
    assert.deepEqual(run.readinessAsked, []);
    assert.equal(run.mocks.ofType(ASSIGNMENT).filter((a) => a.name === "gateway-ip-assignment").length, 1);
  });

  test("extra trusted sources are kept next to the API droplet", async () => {
    const run = await runFleet({
      databaseTrustedSources: JSON.stringify(["droplet:123456", "ip_addr:81.2.69.160"]),
    });
    const fw = run.find("digitalocean:index/databaseFirewall:DatabaseFirewall", "database-firewall");
    assert.deepEqual(fw.inputs.rules, [
      { type: "tag", value: "voice-fleet-prod-api" },
      { type: "droplet", value: "123456" },
      { type: "ip_addr", value: "81.2.69.160" },
    ]);
  });

  test("a bundle with a binary of megabytes travels as the object; user data does not grow", async () => {
    const base = await runFleet();
    const dir = mkdtempSync(path.join(tmpdir(), "big-bundle-"));
    try {
      const files = [
        ...readDistBundle(DIST),
        { path: "media/voice-media", content: randomBytes(3_000_000), mode: 0o755 },
      ];
      const packed = packBundle(files);
      const file = path.join(dir, `gateway-${packed.sha256}.tar.gz`);
      writeFileSync(file, packed.bytes);
      const run = await runFleet({}, { ...packed, file, packMs: 0 });
      const object = run.find(BUNDLE_OBJECT, "bundle-object");
      assert.equal(object.inputs.source, file);
      assert.equal(object.inputs.key, `gateway/${packed.sha256}.tar.gz`);
      const size = (r: typeof run) => Buffer.byteLength(String(r.find(DROPLET, "gateway-a").inputs.userData));
      // A new bundle changes user data (so the droplet is replaced with it, as before)...
      const userData = (r: typeof run) => String(r.find(DROPLET, "gateway-a").inputs.userData);
      assert.notEqual(userData(run), userData(base));
      // ...by its hash only, in the URL and in BUNDLE_SHA256 (compressed: within a few bytes).
      assert.ok(Math.abs(size(run) - size(base)) < 64, `${size(run)} vs ${size(base)} bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a new gateway bundle leaves the API droplet's user data (its Node runtime object) alone", async () => {
    const base = await runFleet();
    const files = [...readDistBundle(DIST), { path: "gateway/extra.js", content: randomBytes(64) }];
    const dir = mkdtempSync(path.join(tmpdir(), "new-bundle-"));
    try {
      const packed = packBundle(files);
      const file = path.join(dir, `gateway-${packed.sha256}.tar.gz`);
      writeFileSync(file, packed.bytes);
      const run = await runFleet({}, { ...packed, file, packMs: 0 });
      const api = (r: typeof run) => String(r.find(DROPLET, "api").inputs.userData);
      assert.equal(api(run), api(base));
      const settings = readUserDataFiles(api(run))
        .get("/etc/voice-fleet/api-bootstrap.env")
        ?.content.toString();
      assert.match(settings ?? "", /^RUNTIME_URL='https:\/\/[^']+\/runtime\/[0-9a-f]{64}\.tar\.gz'$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no dist/: the program says to build first", () => {
    const empty = mkdtempSync(path.join(tmpdir(), "no-dist-"));
    try {
      assert.throws(() => readDistBundle(empty), /run npm run build first/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
