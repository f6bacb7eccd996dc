import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseEnv } from "node:util";
import { types } from "@pulumi/digitalocean";
import { envFile } from "../../cloud-init/render.ts";
import { contains, isPlaceholderCidr, overlaps, parseCidr } from "../cidr.ts";
import { parseSettings } from "../config.ts";
import { sizeCatalog, sizeProblem } from "../droplet-sizes.ts";
import { gatewayOutbound } from "../firewall-rules.ts";
import { checkSecret, checkSecretPresence, SECRET_SPECS, type SecretSpec, type Secrets } from "../secrets.ts";
import { filledIn, from, problemsOf, prod } from "./settings-harness.ts";

describe("stack settings", () => {
  test("Pulumi.prod.yaml holds every setting of the design, placeholders marked", () => {
    const s = parseSettings(from(prod), { allowPlaceholders: true });
    assert.equal(s.gatewaySize, "s-8vcpu-32gb-amd");
    assert.equal(s.apiSize, "s-2vcpu-4gb");
    assert.equal(s.gatewayInstances, 4);
    assert.equal(s.workersPerInstance, 4);
    assert.equal(s.firstUdpPort, 8881);
    assert.deepEqual(s.gatewaySlots, ["a"]);
    assert.equal(s.gatewayActiveSlot, "a");
    assert.equal(s.emqxImage, "emqx/emqx:5.8.9");
    assert.deepEqual([...s.placeholders].sort(), [
      "adminCidrs",
      "alertEmail",
      "apiReleaseSha256",
      "apiReleaseUrl",
      "sshKeyFingerprints",
      "webReleaseSha256",
      "webReleaseUrl",
    ]);
  });

  test("placeholders are refused outside the plan, each by its key", () => {
    const problems = problemsOf(prod);
    for (const key of ["adminCidrs", "sshKeyFingerprints", "alertEmail", "apiReleaseUrl"]) {
      assert.ok(
        problems.some((p) => p.startsWith(`voice-fleet:${key}:`) && p.includes("placeholder")),
        `${key} in ${problems.join("; ")}`,
      );
    }
  });

  test("real values pass without placeholders", () => {
    const s = parseSettings(from(filledIn));
    assert.deepEqual(s.placeholders, []);
    assert.deepEqual(s.adminCidrs, ["81.2.69.160/32"]);
  });

  test("a missing required key is named with the command that sets it", () => {
    const problems = problemsOf({ ...filledIn, gatewaySize: undefined });
    assert.deepEqual(problems, ["voice-fleet:gatewaySize: missing (pulumi config set gatewaySize <value>)"]);
  });

  test("a retired droplet size is refused, naming the key; an unknown one too", () => {
    const problems = problemsOf({ ...filledIn, gatewaySize: "s-8vcpu-32gb", apiSize: "s-2vcpu-5gb" });
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.match(problems[0] ?? "", /^voice-fleet:gatewaySize: "s-8vcpu-32gb" is a retired droplet size/);
    assert.match(problems[0] ?? "", /s-8vcpu-32gb-amd or g-8vcpu-32gb/);
    assert.match(
      problems[1] ?? "",
      /^voice-fleet:apiSize: "s-2vcpu-5gb" is not a droplet size the provider knows/,
    );
    for (const size of ["s-8vcpu-32gb-amd", "g-8vcpu-32gb", "s-2vcpu-4gb"]) {
      assert.equal(parseSettings(from({ ...filledIn, gatewaySize: size })).gatewaySize, size);
    }
  });

  test("the SDK's size list splits where the provider's retired block starts", () => {
    const catalog = sizeCatalog(types.enums.DropletSlug);
    assert.ok(catalog.retired.has("s-8vcpu-32gb"));
    assert.ok(catalog.retired.has("512mb"));
    // Listed in both blocks under two names: on sale.
    assert.ok(catalog.supported.has("so1_5-2vcpu-16gb") && !catalog.retired.has("so1_5-2vcpu-16gb"));
    assert.equal(sizeProblem("s-8vcpu-32gb-amd", catalog), undefined);
    assert.throws(() => sizeCatalog({ A: "s-1vcpu-1gb" }), /no Droplet16GB key/);
  });

  test("every invalid value is reported at once, by key", () => {
    const problems = problemsOf({
      ...filledIn,
      region: "Frankfurt",
      vpcIpRange: "8.8.0.0/16",
      gatewayInstances: "0",
      firstUdpPort: "80",
      adminCidrs: JSON.stringify(["0.0.0.0/0"]),
      gatewaySlots: JSON.stringify(["a", "b"]),
      gatewayActiveSlot: "c",
      emqxImage: "emqx/emqx:latest",
      livekitUrl: "http://lk",
      databaseTrustedSources: JSON.stringify(["laptop"]),
      apiReleaseUrl: "http://releases.voice.test/a.tgz",
      apiReleaseSha256: "xyz",
    });
    const keys = problems.map((p) => p.split(":")[1]);
    assert.deepEqual(keys.sort(), [
      "adminCidrs",
      "apiReleaseSha256",
      "apiReleaseUrl",
      "databaseTrustedSources",
      "emqxImage",
      "firstUdpPort",
      "gatewayActiveSlot",
      "gatewayInstances",
      "livekitUrl",
      "region",
      "vpcIpRange",
    ]);
  });

  test("a number written other than in decimal digits is refused, naming the key", () => {
    // Number() reads "0x10" as 16 and "1e1" as 10: a value that is not what it looks like.
    for (const text of ["0x4", "1e1", "4.0", "+4"]) {
      assert.deepEqual(problemsOf({ ...filledIn, gatewayInstances: text }), [
        `voice-fleet:gatewayInstances: must be an integer in 1..16, got ${JSON.stringify(text)}`,
      ]);
    }
    assert.equal(parseSettings(from({ ...filledIn, gatewayInstances: "4" })).gatewayInstances, 4);
  });

  test("an empty gatewaySlots or sshKeyFingerprints is refused, naming the key", () => {
    // No slot: no gateway droplet, and the program died on the missing active one with a
    // TypeError. No key: droplets no one can ssh into (password login is off), while
    // every recovery in docs/runbook.md starts with `ssh root@...`.
    for (const key of ["gatewaySlots", "sshKeyFingerprints"]) {
      const problems = problemsOf({ ...filledIn, [key]: "[]" });
      assert.ok(
        problems.some((p) => p.startsWith(`voice-fleet:${key}: `)),
        `${key}: ${problems.join("; ")}`,
      );
    }
  });

  test("apiProxyPaths: a path listed twice is refused naming the key", () => {
    // Each path is an nginx `location` (cloud-init/render.ts nginxSite): nginx refuses a
    // duplicate location, and the API droplet's first boot stops at `nginx -t`.
    const problems = problemsOf({ ...filledIn, apiProxyPaths: JSON.stringify(["/toy/", "/api/", "/api/"]) });
    assert.ok(
      problems.some((p) => p.startsWith("voice-fleet:apiProxyPaths: ")),
      problems.join("; "),
    );
  });

  test("databaseTrustedSources: a value its type cannot hold is refused naming the key and the entry", () => {
    // The stack replaces the cluster's whole list (database.ts): DigitalOcean refuses a bad
    // entry only at `pulumi up`, as the database firewall's error, naming no key.
    for (const entry of [
      "droplet:old-monolith",
      "ip_addr:laptop",
      "ip_addr:81.2.69.160/33",
      "k8s:prod",
      "app:web",
    ]) {
      const problems = problemsOf({ ...filledIn, databaseTrustedSources: JSON.stringify([entry]) });
      assert.equal(problems.length, 1, problems.join("; "));
      assert.match(
        problems[0] ?? "",
        new RegExp(`^voice-fleet:databaseTrustedSources: "${entry.replace("/", "\\/")}": `),
      );
    }
    const ok = [
      "droplet:123456",
      "ip_addr:81.2.69.160",
      "ip_addr:81.2.69.0/24",
      "tag:monolith",
      `k8s:${"9cc10173-e9ea-4176-9dbc-a4cee4c4ff30"}`,
    ];
    assert.equal(
      parseSettings(from({ ...filledIn, databaseTrustedSources: JSON.stringify(ok) })).databaseTrustedSources
        .length,
      5,
    );
  });

  test("livekitUrl: wss:// on port 443 only (the gateway's outbound firewall), refused naming the key", () => {
    const tcpOut = gatewayOutbound(parseSettings(from(filledIn)))
      .filter((r) => r.protocol === "tcp" && r.destinations.includes("0.0.0.0/0"))
      .map((r) => r.portRange);
    assert.ok(tcpOut.includes("443"), "signalling leaves on 443");
    for (const good of [
      "wss://proj.livekit.cloud",
      "wss://proj.livekit.cloud:443",
      "wss://lk.voice.test/rtc",
    ]) {
      assert.equal(parseSettings(from({ ...filledIn, livekitUrl: good })).livekitUrl, good);
    }
    for (const [bad, why] of [
      ["ws://proj.livekit.cloud", /wss:\/\//],
      ["https://proj.livekit.cloud", /wss:\/\//],
      ["wss://lk.voice.test:7880", /port 443/],
      ["wss://lk.voice.test#x", /#/],
      ["wss://user:pw@lk.voice.test", /user name or password/],
      ["wss:// lk", /spaces/],
    ] as const) {
      const problems = problemsOf({ ...filledIn, livekitUrl: bad });
      assert.ok(
        problems.some((p) => p.startsWith("voice-fleet:livekitUrl: ") && why.test(p)),
        `${bad}: ${problems.join("; ")}`,
      );
    }
  });

  test("secrets are checked without ever echoing them", () => {
    const spec = SECRET_SPECS.find((x) => x.key === "gatewayMqttPassword") as SecretSpec;
    assert.equal(checkSecret(spec, "a".repeat(32)), "a".repeat(32));
    for (const bad of ["zq9x", `${"a".repeat(30)} space`, `${"a".repeat(30)}'quote`, "a".repeat(200)]) {
      assert.throws(
        () => checkSecret(spec, bad),
        (err: Error) => err.message.includes("voice-fleet:gatewayMqttPassword") && !err.message.includes(bad),
      );
    }
  });

  test("LiveKit key and secret: what passes reaches the gateways whole through gateway.env", () => {
    // gateway.env is written unquoted and read by Node's util.parseEnv: `#` starts a comment,
    // a leading quote makes a quoted value. Such values are refused, naming the key.
    for (const key of ["livekitApiKey", "livekitApiSecret"] as const) {
      const spec = SECRET_SPECS.find((x) => x.key === key) as SecretSpec;
      for (const bad of [
        "abcd#efgh1234",
        '"abcdefgh1234',
        "'abcdefgh1234",
        "abcd efgh1234",
        "abcd`efgh1234",
      ]) {
        assert.throws(
          () => checkSecret(spec, bad),
          (err: Error) => err.message.includes(`voice-fleet:${key}:`) && !err.message.includes(bad),
          `${key} ${bad}`,
        );
      }
      const good = [
        "APIk3yExample",
        "s3cr3tLiveKitValueForTests0123456789abcd",
        "a.b_c~d+e/f=g-h",
        "=leading-equals",
      ];
      for (const value of good) {
        assert.equal(checkSecret(spec, value), value);
        const env = envFile([
          ["LIVEKIT_API_SECRET", value],
          ["NEXT", "1"],
        ]);
        assert.deepEqual({ ...parseEnv(env) }, { LIVEKIT_API_SECRET: value, NEXT: "1" }, value);
      }
    }
  });

  test("required secrets must be set; LiveKit key, secret and URL go together", () => {
    const s = parseSettings(from(filledIn));
    const all = new Set<keyof Secrets>(["mqttSigningKey", "gatewayMqttPassword", "emqxDashboardPassword"]);
    checkSecretPresence(s, all);
    assert.throws(
      () => checkSecretPresence(s, new Set(["mqttSigningKey"])),
      /voice-fleet:gatewayMqttPassword: missing secret, the password of MQTT user `gateway`.*: pulumi config set --secret gatewayMqttPassword <value> \(openssl rand -hex 24\)/,
    );
    assert.throws(() => checkSecretPresence(s, new Set([...all, "livekitApiKey"])), /set both or neither/);
    assert.throws(
      () => checkSecretPresence(s, new Set([...all, "livekitApiKey", "livekitApiSecret"])),
      /voice-fleet:livekitUrl/,
    );
  });
});

describe("CIDR helpers", () => {
  test("parse, containment and overlap", () => {
    const vpc = parseCidr("10.60.0.0/20");
    assert.ok(vpc?.isPrivate);
    assert.equal(parseCidr("10.60.3.7/20")?.base, vpc?.base);
    assert.equal(parseCidr("10.60.0.0/33"), undefined);
    assert.equal(parseCidr("not-a-cidr"), undefined);
    assert.ok(contains(vpc as never, parseCidr("10.60.15.255/32") as never));
    assert.ok(!contains(vpc as never, parseCidr("10.60.16.0/32") as never));
    assert.ok(overlaps(parseCidr("10.0.0.0/8") as never, vpc as never));
    assert.ok(!overlaps(parseCidr("10.114.0.0/20") as never, vpc as never));
    assert.ok(!parseCidr("172.32.0.0/16")?.isPrivate);
    assert.ok(isPlaceholderCidr(parseCidr("203.0.113.10/32") as never));
    assert.ok(!isPlaceholderCidr(parseCidr("81.2.69.160/32") as never));
  });
});
