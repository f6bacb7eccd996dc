/** `npm run plan`: the offline preview the on-call reads. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { storeGatewayBundle, storeNodeRuntime } from "../../cloud-init/bundle-runtime.ts";
import { plan } from "../plan.ts";
import { DIST, PROD_FILE, ROOT } from "./fleet-harness.ts";

test("the plan lists every resource, the firewall rules, the instances and the user-data sizes", async () => {
  const lines = await plan({ stack: "prod", stackFile: PROD_FILE, distDir: DIST });
  const text = lines.join("\n");
  assert.equal(path.relative(ROOT, PROD_FILE), "Pulumi.prod.yaml");
  for (const kind of [
    "Vpc",
    "Tag",
    "ReservedIp",
    "ReservedIpAssignment",
    "Droplet",
    "Firewall",
    "VpcPeering",
  ]) {
    assert.match(text, new RegExp(`^  \\+ ${kind} `, "m"), kind);
  }
  for (const kind of ["DatabaseFirewall", "Project", "MonitorAlert"])
    assert.match(text, new RegExp(`\\+ ${kind} `));
  assert.match(text, /gateway-a\s+voice-fleet-prod-gateway-a size=s-8vcpu-32gb-amd region=fra1/);
  assert.match(text, /gateway-ip\s+region=fra1 {2}\[protected\]/);
  assert.match(text, /in {2}udp {2}8881-8884 {3}from 0\.0\.0\.0\/0, ::\/0 .* device audio/);
  assert.match(text, /in {2}tcp {2}22 {10}from 203\.0\.113\.10\/32/);
  assert.match(text, /gateway-4 {2}UDP 8884 {2}health 9004 {2}4 Opus workers/);
  assert.match(text, /^ {2}gateway-a +[\d,]+ +bytes +\d+\.\d%/m);
  assert.match(text, /^ {2}api +[\d,]+ +bytes/m);
  assert.match(text, /placeholders still set .*adminCidrs/);
  // The bundle: the object, its size, and user data a fraction of the limit.
  const bundle = storeGatewayBundle(DIST, ROOT);
  const runtime = storeNodeRuntime(ROOT);
  assert.match(
    text,
    new RegExp(
      `\\+ SpacesBucketObject +bundle-object +gateway/${bundle.sha256}\\.tar\\.gz ${bundle.bytes.length.toLocaleString("en")} bytes acl=public-read`,
    ),
  );
  assert.match(
    text,
    new RegExp(
      `\\+ SpacesBucketObject +bundle-runtime-object +runtime/${runtime.sha256}\\.tar\\.gz ${runtime.bytes.length.toLocaleString("en")} bytes acl=public-read`,
    ),
  );
  assert.match(text, /\+ SpacesBucket +bundle-bucket +voice-fleet-prod-bundles region=fra1 acl=private/);
  const gatewayShare = Number(text.match(/^ {2}gateway-a +[\d,]+ +bytes +(\d+\.\d)%/m)?.[1]);
  assert.ok(gatewayShare < 25, `gateway user data at ${gatewayShare}% of the limit`);
  assert.match(text, /reserved IP moves to a new gateway droplet only once it accepts devices/);
  // Secrets never reach the plan, not even the stand-ins (the bundle's hash is no secret).
  assert.doesNotMatch(
    text.replaceAll(bundle.sha256, "<bundle>").replaceAll(runtime.sha256, "<runtime>"),
    /[0-9a-f]{40}/,
  );
});

test("a retired droplet size fails the plan, naming the key", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "plan-"));
  try {
    const file = path.join(dir, "Pulumi.retired.yaml");
    writeFileSync(
      file,
      readFileSync(PROD_FILE, "utf8").replace(/^( {2}voice-fleet:gatewaySize:).*$/m, "$1 s-8vcpu-32gb"),
    );
    await assert.rejects(
      plan({ stack: "retired", stackFile: file, distDir: DIST }),
      /voice-fleet:gatewaySize: "s-8vcpu-32gb" is a retired droplet size/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a secret written in clear text in the stack file is refused, naming the key, its value never shown", async () => {
  // `pulumi config set mqttSigningKey ...` without --secret puts the key in Pulumi.<stack>.yaml
  // as it is, and the file is committed. The plan used to let a stand-in cover it.
  const dir = mkdtempSync(path.join(tmpdir(), "plan-"));
  const value = "c1ea2".repeat(8);
  try {
    const file = path.join(dir, "Pulumi.cleartext.yaml");
    writeFileSync(
      file,
      `${readFileSync(PROD_FILE, "utf8").trimEnd()}\n  voice-fleet:mqttSigningKey: ${value}\n`,
    );
    await assert.rejects(plan({ stack: "cleartext", stackFile: file, distDir: DIST }), (err: unknown) => {
      const message = err instanceof Error ? err.message : "";
      return (
        /voice-fleet:mqttSigningKey: in clear text in the stack file/.test(message) &&
        !message.includes(value)
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
