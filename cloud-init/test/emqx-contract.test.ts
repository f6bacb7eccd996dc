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
    assert.ok(aclRules.includes('{deny, all, subscribe, ["device-server", {eq, "#"}, {eq, "+/#"}]}.'));
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
    // A top-level key: under `mqtt` EMQX would ignore it and nobody would be subscribed.
    assert.ok(hoconPaths(conf).has("auto_subscribe.topics"), "auto_subscribe is top-level");
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
    // EMQX 5.8 checks `$share/gateway/ingest/+` against `ingest/+`: real topics only.
    assert.match(gatewayRule("subscribe"), /\["ingest\/\+", "lifecycle\/#", "gateway\/#"\]/);
    assert.match(gatewayRule("publish"), /\["devices\/p2p\/#", "gateway\/#"\]/);
    // Only from loopback: the gateway password from the internet gets nothing.
    assert.equal(aclRules.filter((r) => r.startsWith("{allow") && r.includes('"gateway"')).length, 2);
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

/**
 * Every `a.b.c = value` the config sets, and every block path (`a.b`) it opens, from the
 * top-level of emqx.conf. Arrays are not entered (their items are checked by the rows).
 */
function hoconPaths(source: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack: string[] = [];
  let arrayDepth = 0;
  for (const raw of source.split("\n")) {
    const line = raw.replace(/^\s*(##|#|\/\/).*$/, "").trim();
    if (!line) continue;
    if (arrayDepth > 0) {
      arrayDepth += (line.match(/\[/g) ?? []).length - (line.match(/\]/g) ?? []).length;
      continue;
    }
    const open = /^([A-Za-z0-9_."-]+)\s*\{$/.exec(line);
    const set = /^([A-Za-z0-9_."-]+)\s*=\s*(.+)$/.exec(line);
    if (open?.[1]) {
      stack.push(open[1]);
      out.set(stack.join("."), "{");
    } else if (line === "}") {
      stack.pop();
    } else if (set?.[1] && set[2] !== undefined) {
      const key = [...stack, set[1]].join(".");
      if (set[2].startsWith("[")) {
        out.set(key, "[");
        arrayDepth = (set[2].match(/\[/g) ?? []).length - (set[2].match(/\]/g) ?? []).length;
      } else {
        out.set(key, set[2].replace(/^"(.*)"$/, "$1"));
      }
    }
  }
  return out;
}

/** The text of the config and the ACL with HOCON's string escapes undone (`\"` -> `"`). */
const configText = `${conf}\n${acl}`.replace(/\\"/g, '"');

/**
 * Checks one backticked span of the contract's EMQX column against the config:
 * `a.b = v` is that key with that value (or the literal text, for keys inside arrays);
 * `a.b` or `a` is a key or block that exists at that path from the top (or a whole value,
 * as `republish` in `function = republish`); anything else
 * must appear in emqx.conf or acl.conf as written. Spans with `<...>` are descriptions.
 */
function docSpanProblem(span: string): string | undefined {
  if (/<[a-z]+>/.test(span)) return undefined;
  const paths = hoconPaths(conf);
  const set = /^([a-z_][a-z0-9_.]*) = (.+)$/.exec(span);
  if (set?.[1] && set[2] !== undefined) {
    if (paths.get(set[1]) === set[2].replace(/^"(.*)"$/, "$1")) return undefined;
    if (!set[1].includes(".") && configText.includes(span)) return undefined;
    return `\`${span}\`: emqx.conf has ${set[1]} = ${paths.get(set[1]) ?? "(nothing)"}`;
  }
  if (/^[a-z_]+(\.[a-z_]+)*$/.test(span)) {
    const asValue = new RegExp(`= "?${span.replace(/\./g, "\\.")}"?$`, "m");
    if (asValue.test(configText) || configText.includes(`"${span}"`)) return undefined;
    return paths.has(span) ? undefined : `\`${span}\`: no such key at the top of emqx.conf`;
  }
  return configText.includes(span) ? undefined : `\`${span}\`: not in emqx.conf or acl.conf`;
}

function gatewayRule(action: "subscribe" | "publish"): string {
  return (
    aclRules.find((r) =>
      r.startsWith(`{allow, {'and', [{username, "gateway"}, {ipaddr, "127.0.0.1"}]}, ${action},`),
    ) ?? assert.fail(`no gateway ${action} rule`)
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

  test("what each row's EMQX column names is what the config holds, span by span", () => {
    const problems: string[] = [];
    const lines = contract.split("\n").filter((l) => /^\| \d+ \|/.test(l));
    for (const line of lines) {
      const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
      // | # | rule | topic / setting | qos | EMQX 5 | local broker |
      const emqx = cells[5] ?? "";
      for (const m of emqx.matchAll(/`([^`]+)`/g)) {
        const problem = docSpanProblem(m[1] ?? "");
        if (problem) problems.push(`row ${cells[1]}: ${problem}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test("the span check catches the drifts it was written for", () => {
    assert.match(docSpanProblem("mqtt.auto_subscribe") ?? "", /no such key/);
    assert.match(docSpanProblem("broker.shared_subscription_strategy = round_robin") ?? "", /has broker/);
    assert.match(docSpanProblem("mqtt.max_packet_size = 1MB") ?? "", /has mqtt\.max_packet_size = 64KB/);
    assert.equal(docSpanProblem("auto_subscribe"), undefined);
  });

  test("no ACL rule names a `$share/...` filter (EMQX 5.8 checks the real topic; such rules never match)", () => {
    assert.deepEqual(
      aclRules.filter((r) => r.includes("$share")),
      [],
    );
  });

  test("devices and gateways on separate listeners; the device listeners rate-limited (EMQX 5.8 keys)", () => {
    const paths = hoconPaths(conf);
    assert.equal(paths.get("listeners.tcp.gateway.bind"), "127.0.0.1:1884");
    assert.equal(paths.get("listeners.tcp.default.bind"), "0.0.0.0:1883");
    assert.equal(paths.get("listeners.ssl.default.bind"), "0.0.0.0:8883");
    for (const listener of ["listeners.tcp.default", "listeners.ssl.default"]) {
      // emqx_limiter_schema:short_paths(): max_conn_rate per listener, the others per client.
      for (const key of ["max_connections", "max_conn_rate", "messages_rate", "bytes_rate"]) {
        assert.ok(paths.has(`${listener}.${key}`), `${listener}.${key}`);
      }
      // rate syntax of emqx_limiter_schema:to_rate/3
      for (const key of ["max_conn_rate", "messages_rate", "bytes_rate"]) {
        assert.match(paths.get(`${listener}.${key}`) ?? "", /^[0-9]+[a-zA-Z]*\/[0-9]*[smhd]$/);
      }
    }
    assert.equal(paths.has("listeners.tcp.gateway.max_conn_rate"), false, "the gateways are not slowed");
  });

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
