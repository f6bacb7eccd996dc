/**
 * The droplet's guard (cloud-init/common/guard.sh) loaded into real nftables, in a private
 * network namespace this test creates (nothing outside it is touched; a second namespace,
 * joined by a veth pair, is a device: gateway/test/support/netns.ts): the metadata address
 * answers root and refuses every other user; MQTT from another namespace gets a reset
 * until `guard.sh open`, while loopback always passes. Needs root, nft, unshare, nsenter,
 * ip and curl (nftables is in .ci/apt-packages.txt).
 */
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { createNamespace, linkNamespaces } from "../../gateway/test/support/netns.ts";
import { GUARD_PATH, guardBootcmd } from "../hardening.ts";
import { ROOT } from "./dist.ts";

const GUARD = path.join(ROOT, "cloud-init/common/guard.sh");

/** Runs in the droplet's namespace; prints `<check> <curl exit code>` lines. */
const SCRIPT = `
set -eu
ip addr add 169.254.169.254/32 dev lo
serve() { "$NODE" -e 'require("node:http").createServer((q, r) => r.end("ok")).listen(+process.argv[2], process.argv[1])' "$1" "$2" & }
serve 169.254.169.254 8080
serve 0.0.0.0 1883
# EMQX's Erlang distribution and cluster RPC ports (4370; 5369 in Docker, 5370): the cookie is
# all they ask, and every \`emqx ctl\` shows it in its argv (nodetool -setcookie).
serve 127.0.0.1 4370
serve 127.0.0.1 5369
serve 127.0.0.1 5370
# $peer holds the second namespace, a device on the internet (10.203.0.2), joined to this
# one (10.203.0.1) by a veth pair (gateway/test/support/netns.ts).
trap 'kill $(jobs -p) 2>/dev/null' EXIT
try() { # try NAME CMD...: prints NAME and curl's exit code (0: served, 7: refused)
  name=$1; shift
  set +e; "$@" -s -o /dev/null --retry 20 --retry-connrefused --retry-delay 0 --max-time 5 >/dev/null 2>&1; rc=$?; set -e
  echo "$name $rc"
}
# Before the guard: everything is served (the setup works).
try before_root curl http://169.254.169.254:8080/
try before_device nsenter -t "$peer" -n curl http://10.203.0.1:1883/
try before_dist_nobody runuser -u nobody -- curl http://127.0.0.1:4370/
sh "$GUARD"
for p in 4370 5369 5370; do
  set +e; runuser -u nobody -- curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$p/"; echo "dist_nobody_$p $?"; set -e
  try "dist_root_$p" curl "http://127.0.0.1:$p/"
  try "dist_emqx_$p" setpriv --reuid=1000 --regid=1000 --clear-groups curl "http://127.0.0.1:$p/"
done
try root curl http://169.254.169.254:8080/
set +e; runuser -u nobody -- curl -s -o /dev/null --max-time 5 http://169.254.169.254:8080/; echo "nobody $?"; set -e
nft list table inet voice_fleet_guard | grep -o 'counter packets [1-9][0-9]*' | head -n 1 | sed 's/^/metadata_refusals_counted /'
set +e; nsenter -t "$peer" -n curl -s -o /dev/null --max-time 5 http://10.203.0.1:1883/; echo "device_closed $?"; set -e
try loopback_closed curl http://127.0.0.1:1883/
sh "$GUARD"
set +e; nsenter -t "$peer" -n curl -s -o /dev/null --max-time 5 http://10.203.0.1:1883/; echo "device_after_reload $?"; set -e
sh "$GUARD" open
try device_open nsenter -t "$peer" -n curl http://10.203.0.1:1883/
sh "$GUARD"
try device_open_after_reload nsenter -t "$peer" -n curl http://10.203.0.1:1883/
`;

const work = mkdtempSync(path.join(tmpdir(), "guard-"));
after(() => rmSync(work, { recursive: true, force: true }));

describe("the guard in real nftables (private network namespace)", () => {
  test("bootcmd as rendered writes the guard and loads both tables", () => {
    if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces, nftables)");
    const [cmd] = guardBootcmd();
    const target = path.join(work, "guard.sh");
    const script = (cmd?.[2] ?? "")
      .replaceAll(GUARD_PATH, target)
      .replaceAll(path.posix.dirname(GUARD_PATH), work);
    const res = spawnSync("unshare", ["-n", "sh", "-c", `${script}nft list tables`], {
      encoding: "utf8",
      env: { PATH: process.env.PATH },
      timeout: 30_000,
    });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(res.stdout.trim().split("\n"), [
      "table inet voice_fleet_guard",
      "table inet voice_fleet_gate",
    ]);
    // The file first boot reloads is the script without its comments.
    assert.match(readFileSync(target, "utf8"), /^set -eu$/m);
  });

  test("metadata for root alone; MQTT from outside reset until the gate opens, loopback always", async () => {
    if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces, nftables)");
    let res: SpawnSyncReturns<string>;
    const droplet = await createNamespace("droplet");
    const device = await createNamespace("device");
    try {
      linkNamespaces(
        { ns: droplet, ifname: "vf-box", addresses: ["10.203.0.1/30"] },
        { ns: device, ifname: "vf-dev", addresses: ["10.203.0.2/30"] },
      );
      res = droplet.spawnSync("bash", ["-c", SCRIPT], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, GUARD, NODE: process.execPath, peer: String(device.pid) },
        timeout: 60_000,
      });
    } finally {
      await droplet.destroy();
      await device.destroy();
    }
    if (res.error) assert.fail(`nsenter failed to run: ${res.error.message}`);
    assert.equal(res.status, 0, `${res.stdout}\n${res.stderr}`);
    if (/nft: (command )?not found/.test(res.stderr))
      assert.fail("nft is needed: apt-get install -y nftables");
    const got = Object.fromEntries(
      res.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string]),
    );
    assert.deepEqual(got, {
      before_root: "0",
      before_device: "0",
      before_dist_nobody: "0",
      ...Object.fromEntries(
        ["4370", "5369", "5370"].flatMap((p) => [
          [`dist_nobody_${p}`, "7"],
          [`dist_root_${p}`, "0"],
          [`dist_emqx_${p}`, "0"],
        ]),
      ),
      root: "0",
      nobody: "7",
      device_closed: "7",
      loopback_closed: "0",
      device_after_reload: "7",
      device_open: "0",
      device_open_after_reload: "0",
      metadata_refusals_counted: "counter",
    });
  });
});
