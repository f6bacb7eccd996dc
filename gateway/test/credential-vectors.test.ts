/**
 * The verifier and the local broker agree on what a valid signed device is: both run every
 * case of testdata/device-credentials.json (broker/vectors_test.go is the Go side).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { verifyDeviceCredentials } from "../src/auth/device-credentials.ts";

interface Vectors {
  readonly key: string;
  readonly cases: readonly {
    readonly name: string;
    readonly valid: boolean;
    readonly clientId: string;
    readonly username: string;
    readonly password: string;
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL("../../testdata/device-credentials.json", import.meta.url), "utf8"),
) as Vectors;

describe("shared device-credential vectors (testdata/device-credentials.json)", () => {
  it("has cases both ways", () => {
    assert.ok(vectors.cases.filter((c) => c.valid).length >= 5);
    assert.ok(vectors.cases.filter((c) => !c.valid).length >= 20);
  });

  for (const c of vectors.cases) {
    it(`${c.valid ? "accepts" : "refuses"}: ${c.name}`, () => {
      const result = verifyDeviceCredentials(vectors.key, c);
      assert.equal(result.ok, c.valid, JSON.stringify(result));
    });
  }
});
