/**
 * The local box's development signing key: created once as a 0600 file, then reused, so
 * a device provisioned by one `npm start` still connects after the next.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadOrCreateSigningKey } from "../sim/dev-signing-key.ts";

describe("the development signing key", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vf-key-"));
  const file = path.join(dir, "run", "device-signing-key");
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("is created as 64 hex characters in a file only its owner can read", () => {
    const { key, created } = loadOrCreateSigningKey(file);
    assert.equal(created, true);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it("is reused on the next start, and a loosened file is tightened to 0600 again", () => {
    const first = readFileSync(file, "utf8").trim();
    chmodSync(file, 0o644);
    assert.deepEqual(loadOrCreateSigningKey(file), { key: first, created: false });
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it("is replaced by a new one when the file does not hold a key", () => {
    writeFileSync(file, "not a key\n");
    const { key, created } = loadOrCreateSigningKey(file);
    assert.equal(created, true);
    assert.match(key, /^[0-9a-f]{64}$/);
  });
});
