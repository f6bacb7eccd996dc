/**
 * The packer with node_modules inside: names deeper than ustar's 100 bytes and names with
 * spaces unpack with the real `tar` byte for byte; what ustar cannot hold is refused.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { packBundle } from "../bundle.ts";

describe("packing the bundle's deep trees", () => {
  test("a 180-byte path and a name with spaces unpack with tar, contents and x bits intact", () => {
    const deep = `node_modules/@livekit/rtc-node/node_modules/${"a".repeat(60)}/lib/${"b".repeat(50)}/index.js`;
    assert.ok(deep.length > 100 && deep.length < 256);
    const files = [
      { path: deep, content: Buffer.from("module.exports = 1;\n") },
      { path: "node_modules/help-me/fixture/hello world.txt", content: Buffer.from("hi\n") },
      { path: "node/bin/node", content: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    ];
    const dir = mkdtempSync(path.join(tmpdir(), "bundle-pack-"));
    try {
      const archive = path.join(dir, "b.tar.gz");
      writeFileSync(archive, packBundle(files).bytes);
      const res = spawnSync("tar", ["-xzf", archive, "-C", dir], { encoding: "utf8" });
      assert.equal(res.status, 0, res.stderr);
      for (const f of files) assert.ok(readFileSync(path.join(dir, f.path)).equals(f.content), f.path);
      assert.equal(statSync(path.join(dir, "node/bin/node")).mode & 0o777, 0o755);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a name ustar cannot hold is refused with its name", () => {
    const tooLong = `node_modules/${"c".repeat(120)}/${"d".repeat(120)}.js`;
    assert.throws(
      () => packBundle([{ path: tooLong, content: Buffer.alloc(1) }]),
      /longer than ustar allows/,
    );
  });
});
