/** The config edge: keys the stack does not read, which vpcIpRange DigitalOcean accepts, and adminCidrs written as ranges. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, parseSettings } from "../config.ts";
import { filledIn, from, problemsOf } from "./settings-harness.ts";

describe("keys the stack does not read", () => {
  test("a misspelt key is refused, naming it, instead of silently dropping the setting", () => {
    // `gatewayPinnedSlot` for gatewayPinnedSlots: read as no pin at all, the serving slot
    // would be replaced by the `up` meant to roll the other one.
    const values = { ...filledIn, gatewaySlots: '["a","b"]', gatewayPinnedSlot: '["a"]' };
    assert.throws(
      () => parseSettings(from(values), { presentKeys: Object.keys(values) }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 1 &&
        /^voice-fleet:gatewayPinnedSlot: is not a setting of this stack/.test(err.problems[0] ?? ""),
    );
  });

  test("every key of Pulumi.prod.yaml, and every optional one, is read", () => {
    const optional = {
      domain: "voice.test",
      mqttDomain: "mqtt.voice.test",
      mqttPlainPort: "true",
      otaMqttTls: "false",
      livekitUrl: "wss://lk.voice.test",
      bundleBucket: "voice-fleet-prod-bundles",
      databaseName: "manager",
      databaseUser: "manager",
      gatewayReadyTimeoutMinutes: "20",
    };
    const values = { ...filledIn, ...optional };
    parseSettings(from(values), { presentKeys: Object.keys(values) });
  });
});

describe("vpcIpRange: what DigitalOcean accepts for a VPC", () => {
  const vpcProblems = (vpcIpRange: string): string[] =>
    problemsOf({ ...filledIn, vpcIpRange }).filter((p) => p.startsWith("voice-fleet:vpcIpRange: "));

  test("a range overlapping one DigitalOcean reserves is refused, naming the key and the reserved range", () => {
    const cases: [string, string][] = [
      ["10.244.0.0/16", "10.244.0.0/16"],
      ["10.244.16.0/20", "10.244.0.0/16"],
      ["10.245.0.0/24", "10.245.0.0/16"],
      ["10.246.0.0/16", "10.246.0.0/24"],
      ["10.246.0.128/25", "10.246.0.0/24"],
      ["10.0.0.0/8", "10.244.0.0/16"],
    ];
    for (const [range, reserved] of cases) {
      const problems = vpcProblems(range);
      assert.equal(problems.length, 1, `${range}: ${problems.join("; ")}`);
      if (range === "10.0.0.0/8" || range === "10.246.0.128/25") continue; // refused for its size first
      assert.match(
        problems[0] ?? "",
        new RegExp(
          `^voice-fleet:vpcIpRange: overlaps ${reserved.replaceAll(".", "\\.")}: DigitalOcean reserves it`,
        ),
        range,
      );
    }
  });

  test("10.229.0.0/16, reserved in all regions, is refused", () => {
    assert.deepEqual(vpcProblems("10.229.16.0/20"), [
      "voice-fleet:vpcIpRange: overlaps 10.229.0.0/16: DigitalOcean reserves it in all regions (internal use)",
    ]);
  });

  test("a region's own reservation is refused in that region, naming the region", () => {
    const inRegion = (region: string, vpcIpRange: string): string[] =>
      problemsOf({ ...filledIn, region, vpcIpRange }).filter((p) => p.startsWith("voice-fleet:vpcIpRange: "));
    assert.deepEqual(inRegion("fra1", "10.19.0.0/20"), [
      "voice-fleet:vpcIpRange: overlaps 10.19.0.0/16: DigitalOcean reserves it in fra1",
    ]);
    assert.deepEqual(inRegion("nyc1", "10.10.0.0/20"), [
      "voice-fleet:vpcIpRange: overlaps 10.10.0.0/16: DigitalOcean reserves it in nyc1",
    ]);
  });

  test("another region's reservation is accepted outside that region", () => {
    for (const range of ["10.10.0.0/20", "10.17.0.0/16", "10.20.0.0/24"]) {
      assert.equal(parseSettings(from({ ...filledIn, region: "fra1", vpcIpRange: range })).vpcIpRange, range);
    }
  });

  test("a range outside RFC 1918 is refused, saying so", () => {
    for (const range of ["8.8.0.0/16", "172.32.0.0/16", "100.64.0.0/16", "192.169.0.0/16"]) {
      assert.deepEqual(vpcProblems(range), [
        "voice-fleet:vpcIpRange: must lie inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918, as DigitalOcean requires)",
      ]);
    }
  });

  test("a range larger than /16 or smaller than /24 is refused, naming its size", () => {
    assert.deepEqual(vpcProblems("10.60.0.0/15"), [
      "voice-fleet:vpcIpRange: must be /16 to /24 (DigitalOcean's VPC API refuses any other size), got /15",
    ]);
    assert.deepEqual(vpcProblems("10.60.0.0/28"), [
      "voice-fleet:vpcIpRange: must be /16 to /24 (DigitalOcean's VPC API refuses any other size), got /28",
    ]);
  });

  test("a range with host bits set is refused, naming the network address meant", () => {
    assert.deepEqual(vpcProblems("10.20.0.5/16"), [
      "voice-fleet:vpcIpRange: 10.20.0.5/16 has host bits set: did you mean 10.20.0.0/16?",
    ]);
    assert.deepEqual(vpcProblems("10.60.7.0/20"), [
      "voice-fleet:vpcIpRange: 10.60.7.0/20 has host bits set: did you mean 10.60.0.0/20?",
    ]);
    assert.deepEqual(vpcProblems("192.168.3.1/24"), [
      "voice-fleet:vpcIpRange: 192.168.3.1/24 has host bits set: did you mean 192.168.3.0/24?",
    ]);
  });

  test("a prefix written with a leading zero is refused, naming the plain form", () => {
    assert.deepEqual(vpcProblems("10.60.0.0/020"), [
      "voice-fleet:vpcIpRange: write it as 10.60.0.0/20: the provider compares the text, not the range",
    ]);
  });

  test("an address without a prefix, or an IPv6 range, is refused", () => {
    assert.deepEqual(vpcProblems("10.60.0.0"), [
      "voice-fleet:vpcIpRange: must be an IPv4 CIDR such as 10.60.0.0/20",
    ]);
    assert.deepEqual(vpcProblems("fd00:60::/48"), [
      "voice-fleet:vpcIpRange: must be an IPv4 CIDR: a VPC's range is IPv4 only",
    ]);
  });

  test("ranges beside the reserved ones, and the stack's own, are accepted", () => {
    for (const range of [
      "10.60.0.0/20",
      "10.243.0.0/16",
      "10.246.1.0/24",
      "10.247.0.0/16",
      "10.11.0.0/16",
      "172.16.0.0/16",
      "192.168.0.0/24",
    ]) {
      assert.equal(parseSettings(from({ ...filledIn, vpcIpRange: range })).vpcIpRange, range);
    }
  });
});

describe("adminCidrs: each entry says the range it opens", () => {
  const adminProblems = (cidrs: string[]): string[] =>
    problemsOf({ ...filledIn, adminCidrs: JSON.stringify(cidrs) }).filter((p) =>
      p.startsWith("voice-fleet:adminCidrs: "),
    );

  test("an address with a range's prefix is refused, naming both readings", () => {
    // Taken as written, 81.2.69.5/24 opens SSH to all of 81.2.69.0-255.
    assert.deepEqual(adminProblems(["81.2.69.5/24"]), [
      "voice-fleet:adminCidrs: 81.2.69.5/24 has host bits set: did you mean 81.2.69.5/32 (that one address) or 81.2.69.0/24 (the whole range)?",
    ]);
  });

  test("a prefix written with a leading zero is refused, naming the plain form", () => {
    assert.deepEqual(adminProblems(["81.2.69.0/024"]), [
      "voice-fleet:adminCidrs: write 81.2.69.0/024 as 81.2.69.0/24",
    ]);
  });

  test("one address and whole ranges are accepted", () => {
    const adminCidrs = ["81.2.69.160/32", "81.2.69.0/24", "2a01:4f8:c0c::/48"];
    const settings = parseSettings(from({ ...filledIn, adminCidrs: JSON.stringify(adminCidrs) }));
    assert.deepEqual(settings.adminCidrs, adminCidrs);
  });
});
