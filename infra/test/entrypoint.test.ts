/** infra/index.ts as `pulumi up` loads it: config from the engine, bundle from dist/, outputs. */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type * as pulumi from "@pulumi/pulumi";
import { parse, stringify } from "yaml";
import { installMocks, settle } from "../mocks.ts";
import { readStackFile, standInSecrets } from "../stack-file.ts";
import { PROD_FILE, ROOT } from "./fleet-harness.ts";
import { filledIn } from "./settings-harness.ts";

/** Pulumi.prod.yaml with its placeholders filled in, as a stack ready for `up`. */
const realValues: Record<string, string> = {
  ...filledIn,
  // index.ts probes the new droplet's public address before moving the reserved IP; the
  // mocked droplets' addresses are documentation ones that must never be dialled.
  gatewayReadyTimeoutMinutes: "0",
};

const value = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply(resolve));

async function load(config: Record<string, string>, variant: string): Promise<Record<string, unknown>> {
  const secrets = standInSecrets(config);
  await installMocks({ config: { ...config, ...secrets }, secretKeys: Object.keys(secrets), region: "fra1" });
  // A query string makes each import a fresh run of the program.
  return (await import(`../index.ts?${variant}`)) as Record<string, unknown>;
}

test("the program refuses the placeholders of Pulumi.prod.yaml, naming each key", async () => {
  await assert.rejects(
    () => load(readStackFile(PROD_FILE).config, "placeholders"),
    /voice-fleet:adminCidrs: still holds a documentation placeholder/,
  );
});

test("the program refuses a key of this project it does not read (a misspelt one), naming it", async () => {
  await assert.rejects(
    () => load({ ...realValues, gatewayPinnedSlot: '["a"]' }, "misspelt"),
    /voice-fleet:gatewayPinnedSlot: is not a setting of this stack/,
  );
});

test("an invalid secret stops the program before it registers anything, every bad secret named at once", async () => {
  const config = { ...realValues };
  const secrets = {
    ...standInSecrets(config),
    mqttSigningKey: "short",
    gatewayMqttPassword: "has space ".repeat(4),
  };
  const mocks = await installMocks({
    config: { ...config, ...secrets },
    secretKeys: Object.keys(secrets),
    region: "fra1",
  });
  await assert.rejects(
    () => import(`../index.ts?${"bad-secrets"}`),
    (err: unknown) =>
      err instanceof Error &&
      /voice-fleet:mqttSigningKey: too short/.test(err.message) &&
      /voice-fleet:gatewayMqttPassword: contains characters/.test(err.message),
  );
  await settle();
  assert.deepEqual(
    mocks.resources.map((r) => r.type),
    [],
    "nothing registered: under `pulumi up --skip-preview` it would have been created",
  );
});

test("a secret in clear text in the stack file stops the program before it registers anything, naming the key", async () => {
  // `pulumi config set gatewayMqttPassword <value>` without --secret: Pulumi hands the
  // program the value like any other, so only the file says it is not encrypted. index.ts
  // reads Pulumi.<stack>.yaml beside Pulumi.yaml; this stack's name matches .gitignore's
  // Pulumi.*.local.yaml, so a file left behind by a killed run is never committed.
  const stack = "entrypoint-clear-text.local";
  const stackFile = path.join(ROOT, `Pulumi.${stack}.yaml`);
  const clearText = "c".repeat(48);
  const doc = parse(readFileSync(PROD_FILE, "utf8")) as { config: Record<string, unknown> };
  doc.config["voice-fleet:gatewayMqttPassword"] = clearText;
  writeFileSync(stackFile, stringify(doc));
  try {
    const config = { ...realValues };
    const secrets = { ...standInSecrets(config), gatewayMqttPassword: clearText };
    const mocks = await installMocks({
      config: { ...config, ...secrets },
      secretKeys: Object.keys(secrets),
      region: "fra1",
      stack,
    });
    await assert.rejects(
      () => import(`../index.ts?${"clear-text-secret"}`),
      (err: unknown) =>
        err instanceof Error &&
        /voice-fleet:gatewayMqttPassword: in clear text in the stack file: pulumi config set --secret gatewayMqttPassword/.test(
          err.message,
        ) &&
        !err.message.includes(clearText),
    );
    await settle();
    assert.deepEqual(
      mocks.resources.map((r) => r.type),
      [],
      "nothing registered: the value would otherwise be used, and stay in git",
    );
  } finally {
    rmSync(stackFile, { force: true });
  }
});

test("with real settings it exports the reserved IP, droplet ids and private health URLs", async () => {
  const out = await load({ ...realValues }, "real");
  await settle();
  assert.equal(await value(out.gatewayReservedIp as pulumi.Output<string>), "203.0.113.50");
  assert.equal(out.activeGatewaySlot, "a");
  const ids = out.gatewayDropletIds as Record<string, pulumi.Output<string>>;
  assert.match(await value(ids.a as pulumi.Output<string>), /^\d+$/);
  assert.match(await value(out.apiDropletId as pulumi.Output<string>), /^\d+$/);
  assert.equal(await value(out.apiReservedIp as pulumi.Output<string>), "203.0.113.60");
  const health = await value(
    (out.gatewayHealthUrls as Record<string, pulumi.Output<string[]>>).a as pulumi.Output<string[]>,
  );
  assert.equal(health.length, 4);
  const bundle = await value(
    out.gatewayBundle as pulumi.Output<{ url: string; sha256: string; bytes: number }>,
  );
  assert.equal(
    bundle.url,
    `https://voice-fleet-prod-bundles.fra1.digitaloceanspaces.com/gateway/${bundle.sha256}.tar.gz`,
  );
  assert.ok(bundle.bytes > 0);
  for (const url of health) assert.match(url, /^http:\/\/10\.\d+\.\d+\.\d+:900[1-4]\/health$/);
});
