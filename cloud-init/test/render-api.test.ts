/**
 * The rendered API user data: valid for cloud-init, the API's environment, Postgres TLS
 * against the cluster's own CA, nginx in front of manager-web and the API, the release
 * token kept off command lines and out of the log. The gateway droplet's user data is in
 * render.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { DATABASE_CA_PATH, RELEASE_AUTH_HEADER, readUserDataFiles, USER_DATA_LIMIT } from "../render.ts";
import { cloudInitSchema } from "./cloud-init-schema.ts";
import { API_INPUT, SECRETS, sampleApiUserData } from "./sample.ts";

const work = mkdtempSync(path.join(tmpdir(), "api-user-data-"));
after(() => rmSync(work, { recursive: true, force: true }));

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
