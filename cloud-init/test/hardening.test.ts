/**
 * The droplets' first boot as the rendered user data sets it up: the guard first (metadata
 * service for root only, devices shut out), the gateways on their own loopback listener,
 * the dashboard password intact through HOCON, devices let in only when all is ready, and
 * MQTT over TLS with an MQTT domain. Read from user data as DigitalOcean receives it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { hoconString, type MqttTls, readHoconString } from "../hardening.ts";
import { readUserDataFiles } from "../render.ts";
import { cloudInitSchema } from "./cloud-init-schema.ts";
import { SECRETS, sampleApiUserData, sampleGatewayUserData } from "./sample.ts";

const work = mkdtempSync(path.join(tmpdir(), "hardening-"));
after(() => rmSync(work, { recursive: true, force: true }));

const TLS: MqttTls = {
  domain: "mqtt.voice.test",
  alertEmail: "oncall@voice.test",
  dnsToken: "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab",
  keepPlainPort: true,
};

interface CloudConfig {
  bootcmd: string[][];
  packages: string[];
  runcmd: string[][];
}
const doc = (userData: string): CloudConfig => parse(userData) as CloudConfig;
const fileText = (userData: string, p: string): string =>
  readUserDataFiles(userData).get(p)?.content.toString() ?? assert.fail(`${p} is not in user data`);

/** Line number of the first line of `text` matching `re`, or fails. */
function lineOf(text: string, re: RegExp): number {
  const i = text.split("\n").findIndex((l) => re.test(l));
  assert.ok(i >= 0, `no line matches ${re}`);
  return i;
}

describe("the guard: cloud-init's bootcmd, every boot, before anything else", () => {
  for (const [name, userData] of [
    ["gateway", sampleGatewayUserData()],
    ["API", sampleApiUserData()],
  ] as const) {
    test(`${name}: only root (and DigitalOcean's agent) reaches the metadata service`, () => {
      const [cmd] = doc(userData).bootcmd;
      assert.deepEqual(cmd?.slice(0, 2), ["sh", "-c"]);
      const script = cmd?.[2] ?? "";
      assert.match(script, /ip daddr 169\.254\.169\.254 meta skuid != \{ \$\{exempt\} \} counter reject/);
      assert.match(script, /^exempt=0$/m);
      assert.match(script, /id -u do-agent/);
      assert.match(script, /hook forward[^\n]*\n\s*ip daddr 169\.254\.169\.254 counter drop/);
      assert.match(script, /sh \/usr\/local\/lib\/voice-fleet\/guard\.sh\n$/);
      assert.ok(doc(userData).packages.includes("nftables"));
    });
  }

  test("gateway: MQTT from outside is shut (TCP reset) until the gate opens", () => {
    const script = doc(sampleGatewayUserData()).bootcmd[0]?.[2] ?? "";
    assert.match(script, /chain device_gate \{\n\s*tcp dport \{ 1883, 8883 \} counter reject with tcp reset/);
    assert.match(script, /iifname "lo" accept\n\s*jump device_gate/);
  });

  test("first boot reloads the guard, and checks it, before it starts anything", () => {
    for (const [userData, p] of [
      [sampleGatewayUserData(), "/usr/local/sbin/voice-gateway-bootstrap"],
      [sampleApiUserData(), "/usr/local/sbin/api-bootstrap"],
    ] as const) {
      const script = fileText(userData, p);
      const guard = lineOf(script, /^sh \/usr\/local\/lib\/voice-fleet\/guard\.sh$/);
      assert.ok(guard < lineOf(script, /nft list chain inet voice_fleet_guard metadata_out/));
      // The download of the bundle (gateway) or of the Node runtime object (API), and PM2.
      assert.ok(guard < lineOf(script, /^\s*\/usr\/local\/sbin\/voice-(gateway|fleet)-fetch-bundle$/), p);
      assert.ok(guard < lineOf(script, /pm2 start/), p);
    }
  });

  test("no secret is anywhere in user data but in its files (not in bootcmd, runcmd, users, packages)", () => {
    const all = doc(sampleGatewayUserData({ mqttTls: TLS })) as unknown as Record<string, unknown>;
    const rest = JSON.stringify({ ...all, write_files: undefined });
    for (const secret of [...Object.values(SECRETS), TLS.dnsToken]) {
      assert.ok(!rest.includes(secret), "a secret outside write_files");
    }
  });

  test("the user data itself is root's alone on the box", () => {
    assert.match(
      fileText(sampleGatewayUserData(), "/usr/local/sbin/voice-gateway-bootstrap"),
      /then chmod -R go-rwx \/var\/lib\/cloud\/instances; fi$/m,
    );
  });
});

describe("first boot in order: devices come in last", () => {
  const userData = sampleGatewayUserData();
  const bootstrap = fileText(userData, "/usr/local/sbin/voice-gateway-bootstrap");

  test("EMQX, then the gateways under PM2, then the device gate", () => {
    const emqx = lineOf(bootstrap, /systemctl enable --now emqx/);
    const gatewayListener = lineOf(bootstrap, /wait_tcp 127\.0\.0\.1 1884/);
    const pm2 = lineOf(bootstrap, /pm2 start/);
    const open = lineOf(bootstrap, /^systemctl start voice-fleet-open-devices$/);
    assert.ok(emqx < gatewayListener && gatewayListener < pm2 && pm2 < open);
    assert.equal(lineOf(bootstrap, /^touch \/var\/lib\/voice-fleet\/bootstrap\.done$/), open + 1);
  });

  test("the gate opens on every boot, after EMQX and the gateways' unit", () => {
    const unit = fileText(userData, "/etc/systemd/system/voice-fleet-open-devices.service");
    assert.match(unit, /^After=.*emqx\.service.*pm2-gateway\.service/m);
    assert.match(unit, /^ExecStart=\/usr\/local\/sbin\/voice-fleet-open-devices$/m);
    assert.match(unit, /^WantedBy=multi-user\.target$/m);
    assert.match(bootstrap, /^systemctl enable voice-fleet-open-devices$/m);
    const opener = fileText(userData, "/usr/local/sbin/voice-fleet-open-devices");
    assert.match(opener, /OPEN_CMD=\$\{OPEN_CMD:-sh \/usr\/local\/lib\/voice-fleet\/guard\.sh open\}/);
    const file = path.join(work, "open-devices");
    writeFileSync(file, opener);
    assert.equal(spawnSync("bash", ["-n", file]).status, 0);
  });

  test("the gateways use EMQX's loopback listener, which devices cannot reach", () => {
    assert.match(
      fileText(userData, "/etc/voice-gateway/gateway.env"),
      /^MQTT_URL=mqtt:\/\/127\.0\.0\.1:1884$/m,
    );
    assert.match(
      fileText(userData, "/etc/emqx/emqx.conf"),
      /listeners\.tcp\.gateway \{\n\s*bind = "127\.0\.0\.1:1884"/,
    );
  });
});

describe("the EMQX dashboard password through HOCON", () => {
  const hard = [
    "Kq2Wm5//xyz+abc",
    "ab#cd#efghijklmnop",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a password that holds `${`, not a JS template
    'q"uo\\te${x}//#=+,[]{}:',
    "/".repeat(16),
    SECRETS.emqxDashboardPassword,
  ];

  for (const password of hard) {
    test(`arrives whole: ${password}`, () => {
      const env = fileText(
        sampleGatewayUserData({ secrets: { ...SECRETS, emqxDashboardPassword: password } }),
        "/etc/emqx/emqx.env",
      );
      const line = env.split("\n").find((l) => l.startsWith("EMQX_DASHBOARD__DEFAULT_PASSWORD="));
      const value =
        line?.slice("EMQX_DASHBOARD__DEFAULT_PASSWORD=".length) ?? assert.fail("no password line");
      assert.equal(readHoconString(value), password);
    });
  }

  test("quoting: only backslash and double quote are escaped (hocon 0.44.0 unescapes no others)", () => {
    assert.equal(hoconString("a//b#c"), '"a//b#c"');
    assert.equal(hoconString('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(hoconString("a/b\\u0041"), '"a/b\\\\u0041"');
    assert.throws(() => hoconString("line\nbreak"), /printable ASCII/);
  });
});

describe("MQTT over TLS with an MQTT domain", () => {
  const userData = sampleGatewayUserData({ mqttTls: TLS });
  const files = readUserDataFiles(userData);

  test("passes `cloud-init schema`", () => cloudInitSchema(userData, "gateway-tls"));

  test("certbot with the DigitalOcean DNS plugin, the token root's alone", () => {
    assert.ok(doc(userData).packages.includes("certbot"));
    assert.ok(doc(userData).packages.includes("python3-certbot-dns-digitalocean"));
    const where = [...files.values()]
      .filter((f) => f.content.includes(TLS.dnsToken))
      .map((f) => `${f.path} ${f.owner} ${f.permissions}`);
    assert.deepEqual(where, ["/etc/letsencrypt/digitalocean.ini root:root 0600"]);
    assert.match(
      fileText(userData, "/etc/letsencrypt/digitalocean.ini"),
      new RegExp(`^dns_digitalocean_token = ${TLS.dnsToken}$`, "m"),
    );
  });

  test("the certificate comes before EMQX starts, renewals redeploy it and restart the listener", () => {
    const bootstrap = fileText(userData, "/usr/local/sbin/voice-gateway-bootstrap");
    assert.ok(
      lineOf(bootstrap, /voice-fleet-mqtt-cert obtain/) < lineOf(bootstrap, /systemctl enable --now emqx/),
    );
    assert.match(
      fileText(userData, "/etc/voice-gateway/bootstrap.env"),
      /^MQTT_DOMAIN='mqtt\.voice\.test'$/m,
    );
    const cert = fileText(userData, "/usr/local/sbin/voice-fleet-mqtt-cert");
    assert.match(
      cert,
      /--dns-digitalocean --dns-digitalocean-credentials \/etc\/letsencrypt\/digitalocean\.ini/,
    );
    assert.match(cert, /--deploy-hook "\/usr\/local\/sbin\/voice-fleet-mqtt-cert deploy"/);
    assert.match(cert, /docker exec emqx emqx ctl listeners restart ssl:default/);
    assert.match(cert, /OWNER=\$\{CERT_OWNER:-emqx\}/);
    assert.match(
      fileText(userData, "/etc/systemd/system/emqx.service"),
      /-v \/etc\/emqx\/certs:\/opt\/emqx\/etc\/certs:ro/,
    );
    const file = path.join(work, "mqtt-cert");
    writeFileSync(file, cert);
    assert.equal(spawnSync("bash", ["-n", file]).status, 0);
  });

  test("the deploy hook, as shipped, puts the certificate where EMQX reads it (key 0600)", () => {
    const dir = mkdtempSync(path.join(work, "cert-"));
    const live = path.join(dir, "live", TLS.domain);
    mkdirSync(live, { recursive: true });
    writeFileSync(path.join(live, "fullchain.pem"), "CHAIN v2\n");
    writeFileSync(path.join(live, "privkey.pem"), "KEY v2\n");
    writeFileSync(path.join(dir, "bootstrap.env"), fileText(userData, "/etc/voice-gateway/bootstrap.env"));
    const script = path.join(dir, "mqtt-cert");
    writeFileSync(script, fileText(userData, "/usr/local/sbin/voice-fleet-mqtt-cert"));
    const certs = path.join(dir, "certs");
    const owner = userInfo().username;
    const env = {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      BOOT_ENV: path.join(dir, "bootstrap.env"),
      CERTS: certs,
      LIVE_ROOT: path.join(dir, "live"),
      CERT_OWNER: owner,
    };
    const res = spawnSync("bash", [script, "deploy"], { encoding: "utf8", env });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /certificate for mqtt\.voice\.test deployed/);
    assert.equal(readFileSync(path.join(certs, "fullchain.pem"), "utf8"), "CHAIN v2\n");
    assert.equal(readFileSync(path.join(certs, "privkey.pem"), "utf8"), "KEY v2\n");
    assert.equal(statSync(path.join(certs, "privkey.pem")).mode & 0o777, 0o600);
    assert.equal(statSync(certs).mode & 0o777, 0o750);
    assert.equal(spawnSync("bash", [script, "bogus"], { env }).status, 2);
  });

  test("EMQX's TLS listener is switched on; plain 1883 stays only while the config says", () => {
    const conf = fileText(userData, "/etc/emqx/emqx.conf");
    assert.match(conf, /listeners\.ssl\.default \{\n\s*enable = false\n\s*bind = "0\.0\.0\.0:8883"/);
    assert.match(conf, /certfile = "\/opt\/emqx\/etc\/certs\/fullchain\.pem"/);
    const kept = fileText(userData, "/etc/emqx/emqx.env");
    assert.match(kept, /^EMQX_LISTENERS__SSL__DEFAULT__ENABLE=true$/m);
    assert.doesNotMatch(kept, /EMQX_LISTENERS__TCP__DEFAULT__ENABLE/);
    const closed = fileText(
      sampleGatewayUserData({ mqttTls: { ...TLS, keepPlainPort: false } }),
      "/etc/emqx/emqx.env",
    );
    assert.match(closed, /^EMQX_LISTENERS__TCP__DEFAULT__ENABLE=false$/m);
  });

  test("without a domain: no certbot, no token file, no TLS listener", () => {
    const plain = sampleGatewayUserData();
    assert.ok(!doc(plain).packages.some((p) => p.includes("certbot")));
    assert.equal(readUserDataFiles(plain).get("/etc/letsencrypt/digitalocean.ini"), undefined);
    assert.doesNotMatch(fileText(plain, "/etc/emqx/emqx.env"), /SSL/);
  });

  test("the OTA hands out `<domain>:8883` when the gateway serves TLS", () => {
    const env = fileText(sampleApiUserData({ mqttTlsDomain: TLS.domain }), "/etc/manager-api/api.env");
    assert.match(env, /^MQTT_ENDPOINT=mqtt\.voice\.test:8883$/m);
    assert.match(env, /^MQTT_PORT=8883$/m);
  });
});
