/**
 * First boot's bundle step (gateway/fetch-bundle.sh) with real curl, sha256sum and tar
 * against an HTTP server on loopback: the right bundle is installed byte for byte; another
 * hash or a failed download stops first boot with a loud line and installs nothing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { bundleObjectKey, readDistBundle } from "../render.ts";
import { type ObjectServer, runFetchBundle, serveObject } from "./bundle-server.ts";
import { DIST, SAMPLE_BUNDLE } from "./sample.ts";

describe("fetch-bundle.sh", () => {
  let work: string;
  let server: ObjectServer;
  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), "fetch-bundle-"));
    server = await serveObject(`/${bundleObjectKey(SAMPLE_BUNDLE.sha256)}`, SAMPLE_BUNDLE.bytes);
  });
  after(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test("downloads, checks the hash and installs the bundle as dist/ holds it", async () => {
    const dir = path.join(work, "good");
    const res = await runFetchBundle({
      BUNDLE_URL: server.url,
      BUNDLE_SHA256: SAMPLE_BUNDLE.sha256,
      INSTALL_DIR: dir,
    });
    assert.equal(res.code, 0, res.output);
    assert.match(
      res.output,
      new RegExp(`bundle ${SAMPLE_BUNDLE.sha256} installed in ${dir} \\(${SAMPLE_BUNDLE.files} files\\)`),
    );
    for (const f of readDistBundle(DIST)) {
      assert.ok(readFileSync(path.join(dir, f.path)).equals(f.content), f.path);
    }
  });

  test("a hash mismatch stops loudly and installs nothing", async () => {
    const dir = path.join(work, "mismatch");
    const wrong = "f".repeat(64);
    const res = await runFetchBundle({ BUNDLE_URL: server.url, BUNDLE_SHA256: wrong, INSTALL_DIR: dir });
    assert.equal(res.code, 1, res.output);
    assert.match(
      res.output,
      new RegExp(
        `BUNDLE HASH MISMATCH: expected ${wrong}, got ${SAMPLE_BUNDLE.sha256} \\(${SAMPLE_BUNDLE.bytes.length} bytes from ${server.url.replace(/[.?/]/g, "\\$&")}\\): nothing installed, first boot stops here`,
      ),
    );
    assert.equal(existsSync(dir), false, "nothing unpacked");
  });

  test("an object that is not there stops first boot too, nothing installed", async () => {
    const dir = path.join(work, "missing");
    mkdirSync(dir, { recursive: true });
    const res = await runFetchBundle({
      BUNDLE_URL: server.url.replace(SAMPLE_BUNDLE.sha256, "0".repeat(64)),
      BUNDLE_SHA256: "0".repeat(64),
      INSTALL_DIR: dir,
      BUNDLE_RETRIES: "0",
    });
    assert.equal(res.code, 1, res.output);
    assert.match(res.output, /BUNDLE DOWNLOAD FAILED from .*: nothing installed, first boot stops here/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
