/**
 * Every row of docs/broker-contract.md has its EMQX side in the config the gateway
 * droplet receives (decoded from rendered user data, as cloud-init writes it). A new
 * row in the contract without a check here fails the test.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { readUserDataFiles } from "../render.ts";
import { ROOT, SECRETS, sampleGatewayUserData } from "./sample.ts";

const files = readUserDataFiles(sampleGatewayUserData());
const text = (p: string): string =>
  files.get(p)?.content.toString() ?? assert.fail(`${p} is not in user data`);
const conf = text("/etc/emqx/emqx.conf");
const acl = text("/etc/emqx/acl.conf");
/** ACL rules, one per line (comments dropped), in file order. */
const aclRules = acl
  .split("\n")
  .filter((l) => l.trim() && !l.startsWith("%%"))
  .map((l) => l.trim());

const work = mkdtempSync(path.join(tmpdir(), "emqx-acl-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** The HOCON block that starts at `name {` (braces balanced), or fails. */
function block(source: string, name: string): string {
  const start = source.indexOf(`${name} {`);
  assert.ok(start >= 0, `no ${name} block`);
  let depth = 0;
  for (let i = source.indexOf("{", start); i < source.length; i++) {
    if (source[i] === "{") depth++;
    if (source[i] === "}" && --depth === 0) return source.slice(start, i + 1);
  }
  assert.fail(`${name} block is not closed`);
}

const checks: Record<number, () => void> = {
  1: () => {
    const rule = block(conf, "device_ingest");
    assert.ok(rule.includes('sql = "SELECT payload, clientid FROM \\"device-server\\""'), rule);
    assert.match(rule, /function = republish/);
    assert.match(rule, /topic = "ingest\/\$\{clientid\}"/);
    assert.match(rule, /payload = "\$\{payload\}"/);
    assert.match(rule, /qos = 0\s+retain = false/);
  },
  2: () => {
    assert.ok(
      aclRules.includes(
        '{deny, all, subscribe, ["device-server", "$share/+/device-server", {eq, "#"}, {eq, "+/#"}]}.',
      ),
    );
    // No allow rule lets anyone subscribe to it before that deny, nor after it.
    assert.ok(
      !aclRules.some(
        (r) => r.startsWith("{allow") && r.includes("subscribe") && r.includes('"device-server"'),
      ),
    );
  },
  3: () => {
    const auto = block(conf, "auto_subscribe");
    assert.match(auto, /topic = "devices\/p2p\/\$\{clientid\}"\s+qos = 0/);
  },
  4: () => {
    const rule = block(conf, "device_disconnected");
    assert.ok(rule.includes('sql = "SELECT clientid, reason FROM \\"$events/client_disconnected\\""'), rule);
    assert.match(rule, /topic = "lifecycle\/disconnected\/\$\{clientid\}"/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an EMQX placeholder, not a JS template
    assert.ok(rule.includes('payload = "{\\"reason\\":\\"${reason}\\"}"'), rule);
    assert.match(rule, /qos = 0\s+retain = false/);
  },
  5: () => {
    const mqtt = block(conf, "mqtt");
    assert.match(mqtt, /shared_subscription = true/);
    assert.match(mqtt, /shared_subscription_strategy = hash_topic/);
  },
  6: () => {
    assert.match(gatewayRule("subscribe"), /"lifecycle\/#", "gateway\/#"/);
    assert.match(block(conf, "mqtt"), /retain_available = true/);
  },
  7: () => {
    const authn = conf.slice(conf.indexOf("authentication = ["));
    assert.match(authn, /backend = built_in_database\s+user_id_type = username/);
    assert.match(
      authn,
      /bootstrap_file = "\/opt\/emqx\/etc\/auth-built-in-db-bootstrap\.csv"\s+bootstrap_type = plain/,
    );
    assert.match(authn, /backend = http\s+method = post\s+url = "http:\/\/127\.0\.0\.1:9100\/mqtt\/auth"/);
    assert.match(
      authn,
      /clientid = "\$\{clientid\}"\s+username = "\$\{username\}"\s+password = "\$\{password\}"/,
    );
    assert.ok(
      authn.indexOf("built_in_database") < authn.indexOf("backend = http"),
      "gateway user is checked first",
    );
    assert.equal(
      text("/etc/emqx/auth-built-in-db-bootstrap.csv"),
      `user_id,password,is_superuser\ngateway,${SECRETS.mqttPassword},false\n`,
    );
    assert.match(
      text("/etc/voice-gateway/gateway.env"),
      new RegExp(`^MQTT_PASSWORD=${SECRETS.mqttPassword}$`, "m"),
    );
  },
  8: () => {
    assert.ok(aclRules.includes('{allow, all, {publish, [{retain, false}]}, ["device-server"]}.'));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an EMQX placeholder, not a JS template
    assert.ok(aclRules.includes('{allow, all, subscribe, ["devices/p2p/${clientid}"]}.'));
    assert.equal(aclRules.at(-1), "{deny, all}.");
    assert.match(block(conf, "authorization"), /no_match = deny/);
  },
  9: () => {
    assert.match(
      gatewayRule("subscribe"),
      /\["ingest\/\+", "lifecycle\/#", "gateway\/#", "\$share\/gateway\/ingest\/\+", "\$share\/gateway\/lifecycle\/#", "\$share\/gateway\/gateway\/#"\]/,
    );
    assert.match(gatewayRule("publish"), /\["devices\/p2p\/#", "gateway\/#"\]/);
    assert.ok(
      aclRules.includes('{deny, {username, "gateway"}, all, ["#"]}.'),
      "nothing else for the gateway",
    );
  },
  10: () => {
    assert.match(block(conf, "mqtt"), /max_clientid_len = 128/);
    assert.equal(aclRules[0], '{deny, {clientid, {re, "[/+#\\\\x00]"}}, all, ["#"]}.');
  },
  11: () => {
    // EMQX's default: a new CONNECT with a live client id takes the old session over.
    assert.doesNotMatch(conf, /takeover|session_registry|enable_session_registry/);
  },
  12: () => assert.match(block(conf, "mqtt"), /max_packet_size = 64KB/),
  13: () => assert.match(block(conf, "mqtt"), /session_expiry_interval = 0s/),
};

function gatewayRule(action: "subscribe" | "publish"): string {
  return (
    aclRules.find((r) => r.startsWith(`{allow, {username, "gateway"}, ${action},`)) ??
    assert.fail(`no gateway ${action} rule`)
  );
}

describe("EMQX config against the broker contract", () => {
  const contract = readFileSync(path.join(ROOT, "docs/broker-contract.md"), "utf8");
  const rows = [...contract.matchAll(/^\| (\d+) \| ([^|]+)\|/gm)].map((m) => ({
    n: Number(m[1]),
    rule: m[2]?.trim(),
  }));

  test("the contract has rows, and each has a check here", () => {
    assert.ok(rows.length >= 13, `${rows.length} rows`);
    for (const { n } of rows) assert.ok(checks[n], `no check for contract row ${n}`);
  });

  for (const { n, rule } of rows) {
    test(`row ${n}: ${rule}`, () => (checks[n] ?? assert.fail(`no check for row ${n}`))());
  }

  test("emqx.conf is balanced HOCON (braces and brackets, outside strings and comments)", () => {
    const stripped = conf
      .replace(/"(?:[^"\\]|\\.)*"/g, '""')
      .replace(/#.*$/gm, "")
      .replace(/\/\/.*$/gm, "");
    const stack: string[] = [];
    for (const ch of stripped) {
      if (ch === "{" || ch === "[") stack.push(ch);
      if (ch === "}") assert.equal(stack.pop(), "{");
      if (ch === "]") assert.equal(stack.pop(), "[");
    }
    assert.deepEqual(stack, []);
  });

  test("acl.conf is valid Erlang terms, and its client-id guard matches what it should", () => {
    const file = path.join(work, "acl.conf");
    writeFileSync(file, acl);
    const script = [
      `{ok, Terms} = file:consult("${file}"),`,
      '[{deny, {clientid, {re, Re}}, all, ["#"]} | _] = Terms,',
      "M = fun(S) -> re:run(S, Re) =/= nomatch end,",
      'io:format("~w ~w~n", [length(Terms), [M(S) || S <- ["a/b", "a+b", "a#", [97, 0, 98], "AA:BB:CC:DD:EE:FF", "dev_1-x"]]]),',
      "halt().",
    ].join(" ");
    const res = spawnSync("erl", ["-noshell", "-eval", script], { encoding: "utf8" });
    if (res.error) {
      assert.fail(`erl is needed for this test (${res.error.message}): apt-get install -y erlang-base`);
    }
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout.trim(), `${aclRules.length} [true,true,true,true,false,false]`);
  });
});
