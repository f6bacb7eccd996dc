/**
 * The rendered gateway user data, as DigitalOcean would receive it: valid for cloud-init, a
 * fraction of 64 KiB, N gateway instances with unique ports, the same ecosystem file the
 * local box runs, the bundle named by URL and SHA-256 (and packed byte for byte from dist/),
 * secrets only where they belong. The API droplet's user data is in render-api.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { DEFAULT_ECOSYSTEM } from "../../deploy/ecosystem.ts";
import { INSTALL_DIR, packBundle, readDistBundle, readUserDataFiles, USER_DATA_LIMIT } from "../render.ts";
import { cloudInitSchema } from "./cloud-init-schema.ts";
import { DIST, SAMPLE_BUNDLE, SAMPLE_BUNDLE_REF, SECRETS, sampleGatewayUserData } from "./sample.ts";

const work = mkdtempSync(path.join(tmpdir(), "user-data-"));
after(() => rmSync(work, { recursive: true, force: true }));

function distFiles(dir: string, prefix = ""): string[] {
  return readdirSync(dir).flatMap((name) => {
    const rel = prefix ? `${prefix}/${name}` : name;
    return statSync(path.join(dir, name)).isDirectory() ? distFiles(path.join(dir, name), rel) : [rel];
  });
}

describe("gateway user data", () => {
  const userData = sampleGatewayUserData();
  const files = readUserDataFiles(userData);

  test("passes `cloud-init schema`", () => cloudInitSchema(userData, "gateway"));

  test("is a fraction of DigitalOcean's 64 KiB: the bundle is named, not carried", () => {
    const size = Buffer.byteLength(userData);
    assert.ok(size < USER_DATA_LIMIT / 4, `${size} bytes`);
    assert.deepEqual(
      [...files.keys()].filter((p) => p.startsWith(`${INSTALL_DIR}/`)),
      [`${INSTALL_DIR}/ecosystem.config.cjs`],
    );
    const settings = files.get("/etc/voice-gateway/bootstrap.env")?.content.toString() ?? "";
    assert.match(
      settings,
      new RegExp(`^BUNDLE_URL='${SAMPLE_BUNDLE_REF.url.replace(/[.?/]/g, "\\$&")}'$`, "m"),
    );
    assert.match(settings, new RegExp(`^BUNDLE_SHA256='${SAMPLE_BUNDLE.sha256}'$`, "m"));
  });

  test("a bundle reference that is not an https URL and a SHA-256 is refused", () => {
    for (const bundle of [
      { ...SAMPLE_BUNDLE_REF, sha256: "abc" },
      { ...SAMPLE_BUNDLE_REF, url: "http://plain.example/b.tar.gz" },
      { ...SAMPLE_BUNDLE_REF, url: "https://x.example/it's.tar.gz" },
    ]) {
      assert.throws(() => sampleGatewayUserData({ bundle }), /^Error: bundle: /);
    }
  });

  test("first boot fetches and checks the bundle before it starts anything", () => {
    const bootstrap = files.get("/usr/local/sbin/voice-gateway-bootstrap")?.content.toString() ?? "";
    const fetch = files.get("/usr/local/sbin/voice-gateway-fetch-bundle");
    assert.equal(fetch?.permissions, "0755");
    assert.match(bootstrap, /^set -euo pipefail$/m);
    const lines = bootstrap.split("\n");
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l) && !l.trimStart().startsWith("#"));
    const fetchAt = at(/^\/usr\/local\/sbin\/voice-gateway-fetch-bundle$/);
    assert.ok(
      fetchAt > 0,
      "bootstrap calls the fetch script as a command of its own (set -e stops on failure)",
    );
    for (const start of [/systemctl enable --now (docker|emqx)/, /pm2 start/, /npm ci/]) {
      const startAt = at(start);
      assert.ok(startAt < 0 || fetchAt < startAt, `${start} comes after the bundle check`);
    }
  });

  test("first boot installs nothing from npm and compiles nothing: Node and PM2 come in the bundle", () => {
    const bootstrap =
      readUserDataFiles(userData).get("/usr/local/sbin/voice-gateway-bootstrap")?.content.toString() ?? "";
    const commands = bootstrap.split("\n").filter((l) => !l.trimStart().startsWith("#"));
    for (const banned of [/\bnpm\b/, /apt-get/, /pm2 install/, /node-gyp/]) {
      assert.deepEqual(
        commands.filter((l) => banned.test(l)),
        [],
        `${banned}`,
      );
    }
    assert.ok(
      commands.some((l) =>
        /^export PATH="\$\{INSTALL_DIR\}\/node\/bin:\$\{INSTALL_DIR\}\/node_modules\/pm2\/bin:/.test(l),
      ),
    );
    const packages = (parse(userData) as { packages: string[] }).packages;
    for (const p of ["build-essential", "python3", "gnupg"]) assert.ok(!packages.includes(p), p);
  });

  test("renders the same bytes every time (a changed user data replaces the droplet)", () => {
    assert.equal(sampleGatewayUserData(), userData);
  });

  test("holds exactly N gateway instances with unique ports, and the device verifier", () => {
    assert.ok(
      readDistBundle(DIST).some((f) => f.path === "gateway/verifier.js"),
      "the verifier is in the bundle",
    );
    for (const instances of [1, 4, 6]) {
      const dir = mkdtempSync(path.join(work, `eco-${instances}-`));
      const rendered = readUserDataFiles(
        sampleGatewayUserData({ ecosystem: { ...DEFAULT_ECOSYSTEM, instances } }),
      );
      writeFileSync(
        path.join(dir, "ecosystem.config.cjs"),
        rendered.get(`${INSTALL_DIR}/ecosystem.config.cjs`)?.content ?? "",
      );
      const { apps: all } = createRequire(import.meta.url)(path.join(dir, "ecosystem.config.cjs")) as {
        apps: { name: string; script: string; kill_timeout: number; env: Record<string, string> }[];
      };
      const apps = all.filter((a) => a.script === "./gateway/main.js");
      const others = all.filter((a) => a.script !== "./gateway/main.js");
      assert.deepEqual(
        others.map((a) => [a.name, a.script]),
        [["device-auth", "./gateway/verifier.js"]],
      );
      assert.equal(apps.length, instances);
      assert.deepEqual(
        apps.map((a) => a.name),
        apps.map((_, i) => `gateway-${i + 1}`),
      );
      const udp = apps.map((a) => a.env.UDP_PORT);
      const health = apps.map((a) => a.env.HEALTH_PORT);
      assert.equal(new Set(udp).size, instances);
      assert.equal(new Set(health).size, instances);
      assert.deepEqual(
        apps.map((a) => a.env.INSTANCE_ID),
        apps.map((_, i) => String(i + 1)),
      );
      assert.deepEqual(
        udp,
        apps.map((_, i) => String(8881 + i)),
      );
      for (const a of apps) {
        assert.equal(a.env.WORKER_COUNT, "4");
        assert.equal(a.kill_timeout, DEFAULT_ECOSYSTEM.killTimeoutMs);
      }
    }
  });

  test("its ecosystem file is byte-identical to the one the local box runs (dist/)", () => {
    const shipped = files.get(`${INSTALL_DIR}/ecosystem.config.cjs`);
    assert.ok(shipped);
    assert.ok(shipped.content.equals(readFileSync(path.join(DIST, "ecosystem.config.cjs"))));
  });

  test("the packed bundle unpacks (tar) byte for byte as dist/ holds it, source maps and ecosystem left out", () => {
    const dir = mkdtempSync(path.join(work, "bundle-"));
    const archive = path.join(work, "bundle.tar.gz");
    writeFileSync(archive, SAMPLE_BUNDLE.bytes);
    const res = spawnSync("tar", ["-xzf", archive, "-C", dir], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    const expected = distFiles(DIST)
      .filter((f) => !f.endsWith(".map") && f !== "ecosystem.config.cjs")
      .sort();
    assert.deepEqual(distFiles(dir).sort(), expected);
    for (const rel of expected) {
      assert.ok(readFileSync(path.join(dir, rel)).equals(readFileSync(path.join(DIST, rel))), rel);
      assert.equal(
        statSync(path.join(dir, rel)).mode & 0o777,
        statSync(path.join(DIST, rel)).mode & 0o111 ? 0o755 : 0o644,
        rel,
      );
    }
  });

  test("packing is deterministic, and an executable keeps its x bit", () => {
    assert.equal(packBundle(readDistBundle(DIST)).sha256, SAMPLE_BUNDLE.sha256);
    const withBinary = [
      ...readDistBundle(DIST),
      { path: "bin/voice-media", content: Buffer.from("\x7fELF"), mode: 0o755 },
    ];
    const dir = mkdtempSync(path.join(work, "bin-"));
    const archive = path.join(work, "bin.tar.gz");
    writeFileSync(archive, packBundle(withBinary).bytes);
    assert.equal(spawnSync("tar", ["-xzf", archive, "-C", dir]).status, 0);
    assert.equal(statSync(path.join(dir, "bin/voice-media")).mode & 0o777, 0o755);
    assert.throws(() => packBundle([{ path: "../etc/passwd", content: Buffer.alloc(1) }]), /cannot pack/);
  });

  test("the gateways' env file has every key the gateway reads; HEALTH_BIND and UDP_BIND are set at boot", () => {
    const env = files.get("/etc/voice-gateway/gateway.env");
    assert.equal(env?.owner, "gateway:gateway");
    assert.equal(env?.permissions, "0600");
    assert.equal(env?.defer, true);
    assert.equal(
      env?.content.toString(),
      [
        "PUBLIC_HOST=203.0.113.50",
        "MQTT_URL=mqtt://127.0.0.1:1884",
        "MQTT_USERNAME=gateway",
        `MQTT_PASSWORD=${SECRETS.mqttPassword}`,
        `MQTT_SIGNING_KEY=${SECRETS.mqttSigningKey}`,
        "LOG_LEVEL=info",
        "LIVEKIT_URL=wss://voice.livekit.cloud",
        `LIVEKIT_API_KEY=${SECRETS.livekitApiKey}`,
        `LIVEKIT_API_SECRET=${SECRETS.livekitApiSecret}`,
        "",
      ].join("\n"),
    );
    const bootstrap = files.get("/usr/local/sbin/voice-gateway-bootstrap")?.content.toString() ?? "";
    assert.match(bootstrap, /set_env \/etc\/voice-gateway\/gateway\.env HEALTH_BIND "\$private_ip"/);
    assert.match(bootstrap, /set_env \/etc\/voice-gateway\/gateway\.env UDP_BIND "\$anchor_ip"/);
  });

  test("each secret is only in the files that need it, each readable by its owner alone", () => {
    const where = (secret: string) =>
      [...files.values()]
        .filter((f) => f.content.includes(secret))
        .map((f) => `${f.path} ${f.owner} ${f.permissions}`);
    assert.deepEqual(where(SECRETS.mqttPassword), [
      "/etc/voice-gateway/gateway.env gateway:gateway 0600",
      "/etc/emqx/auth-built-in-db-bootstrap.csv emqx:emqx 0600",
    ]);
    assert.deepEqual(where(SECRETS.mqttSigningKey), ["/etc/voice-gateway/gateway.env gateway:gateway 0600"]);
    assert.deepEqual(where(SECRETS.emqxDashboardPassword), ["/etc/emqx/emqx.env root:root 0600"]);
    assert.deepEqual(where(SECRETS.livekitApiSecret), [
      "/etc/voice-gateway/gateway.env gateway:gateway 0600",
    ]);
  });

  test("the EMQX dashboard is private: loopback by default, the private address at boot", () => {
    const conf = files.get("/etc/emqx/emqx.conf")?.content.toString() ?? "";
    assert.match(conf, /dashboard \{\s*listeners\.http \{\s*bind = "127\.0\.0\.1:18083"/);
    const bootstrap = files.get("/usr/local/sbin/voice-gateway-bootstrap")?.content.toString() ?? "";
    assert.match(bootstrap, /EMQX_DASHBOARD__LISTENERS__HTTP__BIND "\\"\$\{private_ip\}:18083\\""/);
    const env = files.get("/etc/emqx/emqx.env")?.content.toString() ?? "";
    assert.match(env, /^EMQX_DASHBOARD__DEFAULT_PASSWORD=/m);
  });

  test("EMQX runs the pinned image from the settings file, and the scripts parse", () => {
    assert.match(
      files.get("/etc/voice-gateway/bootstrap.env")?.content.toString() ?? "",
      /^EMQX_IMAGE='emqx\/emqx:5\.8\.9'$/m,
    );
    assert.match(files.get("/etc/systemd/system/emqx.service")?.content.toString() ?? "", /--network host/);
    for (const script of [
      "/usr/local/sbin/voice-gateway-bootstrap",
      "/usr/local/sbin/voice-gateway-fetch-bundle",
      "/usr/local/lib/voice-fleet/lib.sh",
    ]) {
      const file = path.join(work, path.basename(script));
      writeFileSync(file, files.get(script)?.content ?? "");
      const res = spawnSync("bash", ["-n", file], { encoding: "utf8" });
      assert.equal(res.status, 0, `${script}: ${res.stderr}`);
    }
  });

  test("a value that would break an env file is refused", () => {
    assert.throws(
      () => sampleGatewayUserData({ secrets: { ...SECRETS, mqttPassword: "two\nlines" } }),
      /env file: the value of MQTT_PASSWORD/,
    );
  });
});
