/**
 * The rendered user data, as DigitalOcean would receive it: valid for cloud-init, a
 * fraction of 64 KiB, N gateway instances with unique ports, the same ecosystem file the
 * local box runs, the bundle named by URL and SHA-256 (and packed byte for byte from dist/),
 * secrets only where they belong.
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
import {
  DATABASE_CA_PATH,
  INSTALL_DIR,
  packBundle,
  RELEASE_AUTH_HEADER,
  readDistBundle,
  readUserDataFiles,
  USER_DATA_LIMIT,
} from "../render.ts";
import {
  API_INPUT,
  DIST,
  SAMPLE_BUNDLE,
  SAMPLE_BUNDLE_REF,
  SECRETS,
  sampleApiUserData,
  sampleGatewayUserData,
} from "./sample.ts";

const work = mkdtempSync(path.join(tmpdir(), "user-data-"));
after(() => rmSync(work, { recursive: true, force: true }));

function cloudInitSchema(userData: string, name: string): void {
  const file = path.join(work, `${name}.yaml`);
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
}

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

describe("API user data", () => {
  const userData = sampleApiUserData();
  const files = readUserDataFiles(userData);

  test("passes `cloud-init schema` and stays small", () => {
    cloudInitSchema(userData, "api");
    assert.ok(Buffer.byteLength(userData) < USER_DATA_LIMIT);
  });

  test("environment: DATABASE_URL, the MQTT endpoint at the reserved IP, the signing key", () => {
    const env = files.get("/etc/manager-api/api.env");
    assert.equal(env?.permissions, "0600");
    assert.equal(env?.owner, "api:api");
    const text = env?.content.toString() ?? "";
    assert.match(
      text,
      /^DATABASE_URL=postgresql:\/\/doadmin:pw%2Fx@private-db\.example:25060\/defaultdb\?sslmode=verify-full&sslrootcert=\/etc\/manager-api\/db-ca\.crt$/m,
    );
    assert.match(text, /^MQTT_ENDPOINT=203\.0\.113\.50:1883$/m);
    assert.match(text, new RegExp(`^MQTT_SIGNING_KEY=${SECRETS.mqttSigningKey}$`, "m"));
  });

  test("Postgres TLS: the cluster's CA is the file DATABASE_URL's sslrootcert names, checked with verify-full", () => {
    const ca = files.get(DATABASE_CA_PATH);
    assert.equal(ca?.content.toString(), API_INPUT.databaseCa);
    assert.equal(ca?.owner, "root:root");
    assert.equal(ca?.permissions, "0644");
    // Written in cloud-init's first stage (not deferred): there before manager-api starts.
    assert.notEqual(ca?.defer, true);
    const url = new URL(
      (files.get("/etc/manager-api/api.env")?.content.toString() ?? "").match(/^DATABASE_URL=(.*)$/m)?.[1] ??
        "",
    );
    assert.equal(url.searchParams.get("sslmode"), "verify-full");
    assert.equal(url.searchParams.get("sslrootcert"), DATABASE_CA_PATH);
  });

  test("Postgres TLS: a URL that does not verify against that CA, or a CA that is no PEM, is refused", () => {
    const plain = "postgresql://doadmin:pw@private-db.example:25060/defaultdb";
    for (const databaseUrl of [`${plain}?sslmode=require`, `${plain}?sslmode=verify-full`, plain]) {
      assert.throws(() => sampleApiUserData({ databaseUrl }), /DATABASE_URL/, databaseUrl);
    }
    assert.throws(() => sampleApiUserData({ databaseCa: "" }), /CA certificate/);
    assert.throws(() => sampleApiUserData({ databaseCa: "not a certificate" }), /CA certificate/);
  });

  test("nginx serves manager-web and proxies the API paths; bash reads the settings safely", () => {
    const site = files.get("/etc/nginx/sites-available/manager")?.content.toString() ?? "";
    assert.match(site, /server_name api\.voice\.test;/);
    assert.match(site, /location \/toy\/ \{\s*proxy_pass http:\/\/127\.0\.0\.1:8002;/);
    assert.match(site, /try_files \$uri \$uri\/ \/index\.html;/);
    const settings = path.join(work, "api-bootstrap.env");
    writeFileSync(settings, files.get("/etc/voice-fleet/api-bootstrap.env")?.content ?? "");
    const res = spawnSync("bash", ["-c", `set -eu; source ${settings}; printf %s "$API_RELEASE_URL"`], {
      encoding: "utf8",
    });
    assert.equal(res.stdout, "https://releases.voice.test/api.tar.gz?a=1&b=2");
    const script = path.join(work, "api-bootstrap");
    writeFileSync(script, files.get("/usr/local/sbin/api-bootstrap")?.content ?? "");
    assert.equal(spawnSync("bash", ["-n", script]).status, 0);
  });

  test("the release token: only in a root-only header file, never on curl's command line or in the log", () => {
    const token = API_INPUT.releaseToken ?? assert.fail("the sample has a release token");
    const header = files.get(RELEASE_AUTH_HEADER);
    assert.equal(header?.permissions, "0600");
    assert.equal(header?.owner, "root:root");
    assert.equal(header?.content.toString(), `Authorization: Bearer ${token}\n`);
    for (const [p, f] of files) {
      if (p !== RELEASE_AUTH_HEADER) assert.ok(!f.content.toString().includes(token), `token in ${p}`);
    }
    // The shipped fetch() and retry, against a curl that records its arguments and fails.
    const dir = mkdtempSync(path.join(work, "fetch-"));
    const headerFile = path.join(dir, "release-auth-header");
    writeFileSync(headerFile, header?.content ?? "", { mode: 0o600 });
    writeFileSync(path.join(dir, "lib.sh"), files.get("/usr/local/lib/voice-fleet/lib.sh")?.content ?? "");
    const bootstrap = files.get("/usr/local/sbin/api-bootstrap")?.content.toString() ?? "";
    const fetchFn =
      /^fetch\(\) \{\n[\s\S]*?\n\}\n/m.exec(bootstrap)?.[0] ?? assert.fail("no fetch() in bootstrap");
    assert.ok(fetchFn.includes(RELEASE_AUTH_HEADER));
    writeFileSync(path.join(dir, "fetch.sh"), fetchFn.replaceAll(RELEASE_AUTH_HEADER, headerFile));
    writeFileSync(
      path.join(dir, "curl"),
      `#!/bin/sh\nprintf '%s\\n' "$@" >>"${dir}/argv"\necho "curl: (22) The requested URL returned error: 403" >&2\nexit 22\n`,
      { mode: 0o755 },
    );
    const res = spawnSync(
      "bash",
      [
        "-c",
        `set -euo pipefail; source ${dir}/lib.sh; source ${dir}/fetch.sh; sleep() { :; }; ` +
          `fetch 'https://releases.voice.test/api.tar.gz?X-Amz-Signature=sig' ${"0".repeat(64)} ${dir}/out`,
      ],
      { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } },
    );
    assert.notEqual(res.status, 0, "a failed download fails fetch");
    const argv = readFileSync(path.join(dir, "argv"), "utf8");
    assert.equal(argv.split("\n").filter((a) => a === `@${headerFile}`).length, 5, argv);
    assert.ok(!argv.includes(token), "token on curl's command line");
    const log = res.stdout + res.stderr;
    assert.match(log, /giving up after 5 attempts: curl \(arguments not logged\)/);
    assert.match(log, /download failed: https:\/\/releases\.voice\.test\/api\.tar\.gz$/m);
    assert.ok(!log.includes(token) && !log.includes("Bearer") && !log.includes("sig"), log);
  });

  test("without a domain: no certbot, nginx answers any host name", () => {
    const plain = readUserDataFiles(sampleApiUserData({ domain: undefined }));
    assert.match(plain.get("/etc/nginx/sites-available/manager")?.content.toString() ?? "", /server_name _;/);
    const packages = (parse(sampleApiUserData({ domain: undefined })) as { packages: string[] }).packages;
    assert.ok(!packages.some((p) => p.includes("certbot")), packages.join(" "));
    assert.ok((parse(userData) as { packages: string[] }).packages.includes("python3-certbot-nginx"));
  });
});
