/**
 * The rendered first-boot script, run for real up to and through its bundle step: in a
 * sandbox (user, mount and network namespaces, a chroot over the host's /usr with the
 * rendered files where cloud-init writes them), with the object served as a file:// URL.
 * Commands that would start or install something (systemctl, docker, apt-get, npm, pm2,
 * runuser, node) are stubs that only record their call; there is no network at all.
 *
 * - Another hash: first boot stops at the bundle check, writes bootstrap.failed, unpacks
 *   nothing and starts nothing.
 * - The right hash: the bundle is installed byte for byte, and first boot goes on to its
 *   next step (the metadata lookup, which fails in the sandbox: no network).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { bundleObjectKey, INSTALL_DIR, readDistBundle, readUserDataFiles } from "../render.ts";
import { DIST, SAMPLE_BUNDLE, sampleGatewayUserData } from "./sample.ts";

/** Commands whose call would mean first boot started or installed something. */
const STARTERS = ["systemctl", "docker", "apt-get", "npm", "pm2", "runuser", "node"];
/** Recorded too, allowed (firewalling and sysctls before the bundle are fine). */
const OTHERS = ["sysctl", "nft", "iptables", "ip6tables"];

const SANDBOX = `
set -euo pipefail
R=$1
mount --rbind /usr "$R/usr"
mount -t tmpfs tmpfs "$R/usr/local"
cp -a "$R/.local/." "$R/usr/local/"
touch "$R/dev/null"
mount --bind /dev/null "$R/dev/null"
exec chroot "$R" /usr/bin/env -i PATH=/stubs:/usr/local/sbin:/usr/sbin:/usr/bin HOME=/root \\
  /usr/local/sbin/voice-gateway-bootstrap
`;

const CURL_STUB = `#!/bin/bash
# Real curl for the file:// object only; anything else (the metadata service) fails at once.
for a in "$@"; do case $a in file://*) exec /usr/bin/curl "$@" ;; esac; done
echo "curl $*" >>/stubs.log
exit 7
`;

const work = mkdtempSync(path.join(tmpdir(), "first-boot-"));
after(() => rmSync(work, { recursive: true, force: true }));

const sandboxOk = spawnSync("unshare", ["-rmn", "true"]).status === 0;

interface Boot {
  readonly code: number | null;
  readonly output: string;
  readonly root: string;
  readonly calls: string[];
}

/** Lays out the droplet's files as cloud-init writes them, serves `object`, runs bootstrap. */
function firstBoot(name: string, object: Buffer): Boot {
  const root = path.join(work, name);
  const files = readUserDataFiles(sampleGatewayUserData());
  const place = (dest: string, content: Buffer | string, mode = 0o644): void => {
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, content, { mode });
  };
  for (const dir of ["usr", "etc", "var/lib", "opt", "tmp", "dev", "stubs", "srv"]) {
    mkdirSync(path.join(root, dir), { recursive: true });
  }
  for (const [link, target] of [
    ["bin", "usr/bin"],
    ["lib", "usr/lib"],
    ["lib64", "usr/lib64"],
    ["sbin", "usr/sbin"],
  ] as const) {
    spawnSync("ln", ["-sfn", target, path.join(root, link)]);
  }
  // /usr/local is a tmpfs in the sandbox, filled from .local.
  for (const [p, f] of files) {
    if (p.startsWith("/usr/local/")) {
      place(
        path.join(root, ".local", p.slice("/usr/local/".length)),
        f.content,
        Number.parseInt(f.permissions, 8),
      );
    } else if (p !== "/etc/voice-gateway/bootstrap.env") {
      place(path.join(root, p), f.content, Number.parseInt(f.permissions, 8));
    }
  }
  // The object, where the rendered URL's path says, as a file:// URL (no network here).
  const objectPath = `/srv/${bundleObjectKey(SAMPLE_BUNDLE.sha256)}`;
  place(path.join(root, objectPath), object);
  const settings = files.get("/etc/voice-gateway/bootstrap.env")?.content.toString() ?? "";
  place(
    path.join(root, "etc/voice-gateway/bootstrap.env"),
    settings.replace(/^BUNDLE_URL=.*$/m, `BUNDLE_URL='file://${objectPath}'`),
  );
  for (const cmd of [...STARTERS, ...OTHERS]) {
    place(path.join(root, "stubs", cmd), `#!/bin/bash\necho "${cmd} $*" >>/stubs.log\n`, 0o755);
  }
  place(path.join(root, "stubs", "curl"), CURL_STUB, 0o755);
  const script = path.join(work, "sandbox.sh");
  writeFileSync(script, SANDBOX);
  const res = spawnSync("unshare", ["-rmn", "bash", script, root], { encoding: "utf8", timeout: 60_000 });
  const log = path.join(root, "stubs.log");
  const calls = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
  return { code: res.status, output: `${res.stdout}${res.stderr}`, root, calls };
}

const started = (calls: string[]) => calls.filter((c) => STARTERS.includes(c.split(" ")[0] ?? ""));

describe("first boot and the bundle (sandboxed)", {
  skip: sandboxOk ? false : "unshare -rmn is not permitted here",
}, () => {
  test("another hash: first boot stops at the bundle check, nothing unpacked, nothing started", () => {
    const tampered = Buffer.from(SAMPLE_BUNDLE.bytes);
    tampered[tampered.length - 9] = (tampered[tampered.length - 9] ?? 0) ^ 0xff;
    const boot = firstBoot("mismatch", tampered);
    assert.notEqual(boot.code, 0, boot.output);
    assert.match(
      boot.output,
      new RegExp(`BUNDLE HASH MISMATCH: expected ${SAMPLE_BUNDLE.sha256}, got [0-9a-f]{64}`),
    );
    assert.match(boot.output, /FAILED at line \d+/);
    assert.ok(
      existsSync(path.join(boot.root, "var/lib/voice-fleet/bootstrap.failed")),
      "bootstrap.failed written",
    );
    assert.deepEqual(
      readdirSync(path.join(boot.root, INSTALL_DIR)),
      ["ecosystem.config.cjs"],
      "nothing unpacked",
    );
    assert.deepEqual(started(boot.calls), [], "nothing started or installed");
  });

  test("the right hash: the bundle is installed byte for byte, and first boot goes on", () => {
    const boot = firstBoot("good", SAMPLE_BUNDLE.bytes);
    assert.match(boot.output, new RegExp(`bundle ${SAMPLE_BUNDLE.sha256} installed in ${INSTALL_DIR}`));
    for (const f of readDistBundle(DIST)) {
      assert.ok(readFileSync(path.join(boot.root, INSTALL_DIR, f.path)).equals(f.content), f.path);
    }
    // The next step asks the metadata service, which the sandbox has no network for.
    assert.ok(
      boot.calls.some((c) => c.startsWith("curl ") && c.includes("169.254.169.254")),
      boot.calls.join("\n"),
    );
    assert.notEqual(boot.code, 0);
  });
});
