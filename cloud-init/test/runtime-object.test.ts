/**
 * The API droplet's Node runtime object, as `pulumi up` uploads it, unpacked by the real
 * fetch-bundle.sh (as api/bootstrap.sh runs it): its node, npm and PM2 run from it alone.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { nodePrefix } from "../../deploy/node-runtime.ts";
import { nodeRuntime } from "../../infra/test/fleet-harness.ts";
import { BUNDLED_PM2 } from "../bundle-runtime.ts";
import { bundleObjectKey } from "../render.ts";
import { type ObjectServer, runFetchBundle, serveObject } from "./bundle-server.ts";
import { ROOT } from "./sample.ts";

describe("the Node runtime object of the API droplet", () => {
  let dir: string;
  let objects: ObjectServer;
  const version = (pkg: string) => (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
  // As api/bootstrap.sh sets it: the object's node/bin first; /usr/bin has another node here.
  const run = (cmd: string, ...args: string[]) =>
    spawnSync(path.join(dir, cmd), args, {
      encoding: "utf8",
      env: { PATH: `${path.join(dir, "node/bin")}:/usr/bin:/bin`, HOME: dir },
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "runtime-object-"));
    const object = nodeRuntime();
    const key = bundleObjectKey(object.sha256, "runtime");
    objects = await serveObject(`/${key}`, readFileSync(object.file));
    const fetched = await runFetchBundle({
      BUNDLE_URL: objects.url,
      BUNDLE_SHA256: object.sha256,
      INSTALL_DIR: dir,
    });
    assert.equal(fetched.code, 0, fetched.output);
  });

  after(async () => {
    await objects?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("its node is the Node the tests run on", () => {
    assert.equal(run("node/bin/node", "--version").stdout.trim(), process.version);
  });

  it("its npm runs (manager-api's npm ci) and has this Node's headers to build against", () => {
    const npm = run("node/bin/npm", "--version");
    assert.equal(npm.status, 0, npm.stderr);
    assert.equal(
      npm.stdout.trim(),
      version(path.join(nodePrefix(process.execPath), "lib/node_modules/npm/package.json")),
    );
    assert.ok(existsSync(path.join(dir, "node/include/node/node_version.h")));
  });

  it("its PM2 is the version package.json pins", () => {
    const pinned = (
      JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies.pm2;
    assert.equal(version(path.join(dir, path.dirname(path.dirname(BUNDLED_PM2)), "package.json")), pinned);
  });
});
