/** The one env reader both processes use (gateway/src/env.ts): what an integer setting accepts. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseVerifierConfig } from "../src/auth/verifier-config.ts";
import { parseConfig } from "../src/config.ts";
import { ConfigError, envInt } from "../src/env.ts";

const read = (value: string) => envInt({ N: value }, "N", 7, 0, 100);

describe("integer settings", () => {
  it("take decimal digits, trimmed", () => {
    assert.equal(read(" 42 "), 42);
  });

  it("fall back when unset or blank", () => {
    assert.equal(envInt({}, "N", 7, 0, 100), 7);
    assert.equal(read("  "), 7);
  });

  for (const bad of ["-1", "+1", "1e3", "0x10", "4.5", "12abc"]) {
    it(`refuse ${JSON.stringify(bad)} as not an integer, naming the variable`, () => {
      assert.throws(
        () => read(bad),
        (err: unknown) => err instanceof ConfigError && err.message === `N: must be an integer, got "${bad}"`,
      );
    });
  }

  it("refuse a value outside the range with the range", () => {
    assert.throws(() => read("101"), { message: "N: must be in 0..100, got 101" });
  });

  it("read the same in the gateway and the verifier (a sign is refused by both)", () => {
    assert.throws(() => parseConfig({ MQTT_PASSWORD: "p", UDP_PORT: "-0" }), {
      message: 'UDP_PORT: must be an integer, got "-0"',
    });
    assert.throws(() => parseVerifierConfig({ MQTT_SIGNING_KEY: "k", VERIFIER_PORT: "-0" }), {
      message: 'VERIFIER_PORT: must be an integer, got "-0"',
    });
  });
});
