/**
 * `cloud-init schema` (Debian's cloud-init) on rendered user data: the check the user data
 * of both droplets must pass (render.test.ts, render-api.test.ts, hardening.test.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** Fails unless cloud-init takes `userData` as valid cloud-config; `name` names it in the failure. */
export function cloudInitSchema(userData: string, name: string): void {
  const dir = mkdtempSync(path.join(tmpdir(), "user-data-schema-"));
  try {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, userData);
    const res = spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
    if (res.error) {
      assert.fail(
        `cloud-init is needed for this test (${res.error.message}): apt-get install -y cloud-init ` +
          "(listed in .ci/apt-packages.txt)",
      );
    }
    assert.equal(res.status, 0, `cloud-init schema rejected ${name}:\n${res.stdout}${res.stderr}`);
    assert.match(res.stdout, /Valid cloud-config/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
