/**
 * The hardware engineer's path (README, "A real device"): `npm start -- --devices 0
 * --public-host <LAN address>`, and a freshly flashed device on another host of that LAN
 * whose OTA URL is `http://<LAN address>:8002/xiaozhi/ota/`.
 *
 * Two private network namespaces joined by a veth pair are the two hosts, so nothing leaves
 * this machine and no port here is shared with another test or a running box
 * (gateway/test/support/netns.ts):
 *   box     10.77.0.9/24 (its primary address, what the kernel picks as a reply's source)
 *           and 10.77.0.1/24, the address the box is told to face; it runs
 *           tools/local-box.ts as `npm start` does (real broker, 4 gateways and the device
 *           verifier under real PM2, the OTA), with its own run folder
 *   device  10.77.0.2/24; runs tools/test/lan-host.ts: the OTA request, MQTT with what it
 *           returned, hello, speech over UDP, the echo heard back
 * A second address on the box's side is how a laptop on Wi-Fi and Ethernet, or with a
 * Docker bridge, looks to the kernel; the device drops UDP from any address but the one it
 * was told (it connects its socket), as it does on the droplet (docs/runbook.md).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DEFAULT_ECOSYSTEM, instancePorts } from "../../deploy/ecosystem.ts";
import { endOf } from "../../gateway/test/support/child-exit.ts";
import { createNamespace, linkNamespaces, type NetNamespace } from "../../gateway/test/support/netns.ts";
import { ROOT } from "../pm2.ts";
import type { DeviceReport, ProbeResult } from "./lan-host.ts";
import { leftIn, type Output, startLocalBox } from "./support/local-box.ts";

const PUBLIC = "10.77.0.1";
const OTHER = "10.77.0.9";
const DEVICE = "10.77.0.2";
const BROKER_PORT = 1883;
const OTA_PORT = 8002;
const PORTS = instancePorts(DEFAULT_ECOSYSTEM);
/** The device verifier's port (deploy/ecosystem.ts: 127.0.0.1:9100 by default). */
const VERIFIER_PORT = 9100;
/** What a device must never be told: it names the box's own loopback, or no host at all. */
const LOOPBACK = /\b127\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|localhost|\[?::1\]?(?![0-9a-f:])|\b0\.0\.0\.0\b/i;

/** Runs tools/test/lan-host.ts in `ns`; resolves with the JSON it printed. */
function lanHost<T>(ns: NetNamespace, args: readonly string[]): Promise<T> {
  const child = ns.spawn(process.execPath, ["--import", "tsx", "tools/test/lan-host.ts", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    void endOf(child).then(({ code }) => {
      if (code !== 0) return reject(new Error(`lan-host ${args.join(" ")} exited ${code}:\n${err}${out}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop() ?? "") as T);
      } catch {
        reject(new Error(`lan-host ${args.join(" ")} printed no JSON line at its end:\n${err}${out}`));
      }
    });
  });
}

describe("the local box on a LAN address, used by a device on another host (network namespaces)", () => {
  // Outside the checkout, as a developer's `--run-dir /tmp/box`: the bundle built there must
  // still find the checkout's npm packages.
  const runDir = path.join(tmpdir(), `test-lan-box-${process.pid}`);
  let box: NetNamespace | undefined;
  let lan: NetNamespace | undefined;
  let boxProcess: ChildProcess | undefined;
  let exited: Promise<number | null> = new Promise(() => {});
  let output: Output;
  let otaUrl: string;

  before(async () => {
    if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces)");
    rmSync(runDir, { recursive: true, force: true });
    box = await createNamespace("box");
    lan = await createNamespace("device");
    linkNamespaces(
      { ns: box, ifname: "lan0", addresses: [`${OTHER}/24`, `${PUBLIC}/24`] },
      { ns: lan, ifname: "lan0", addresses: [`${DEVICE}/24`] },
    );
    const started = startLocalBox(box, ["--devices", "0", "--public-host", PUBLIC, "--run-dir", runDir]);
    boxProcess = started.process;
    exited = started.exited;
    output = started.output;
    const ready = await output.waitFor(/OTA endpoint \(development only\): (\S+)/, 120_000, exited);
    otaUrl = ready[1] ?? "";
  });

  after(async () => {
    // The box's own stop was tested below; whatever is left in either namespace (a box that
    // failed to start or stop, its PM2 daemon and apps, its broker) is killed with it.
    if (boxProcess && boxProcess.exitCode === null) boxProcess.kill("SIGKILL");
    await box?.destroy();
    await lan?.destroy();
    rmSync(runDir, { recursive: true, force: true });
  });

  test("the OTA URL to set on the device names the LAN address", () => {
    assert.equal(otaUrl, `http://${PUBLIC}:${OTA_PORT}/xiaozhi/ota/`);
  });

  test("a device on another host provisions, connects, says hello and hears itself back; nothing it is told names a loopback address", async () => {
    if (!lan) assert.fail("no device namespace");
    const report = await lanHost<DeviceReport>(lan, ["device", otaUrl, "7701"]);
    const mqtt = report.ota.mqtt as Record<string, unknown>;
    assert.equal(mqtt.endpoint, `${PUBLIC}:${BROKER_PORT}`);
    // The OTA saw the device come from the LAN, and put that in the username.
    assert.deepEqual(report.username, { ip: DEVICE });
    const hello = report.messages.find((m) => m.type === "hello") as Record<string, unknown> | undefined;
    assert.ok(hello, `no hello reply among ${JSON.stringify(report.messages)}`);
    const udp = hello.udp as Record<string, unknown>;
    assert.equal(udp.server, PUBLIC);
    assert.ok(
      PORTS.some((p) => p.udpPort === udp.port),
      `UDP port ${String(udp.port)} is not an instance's`,
    );
    assert.ok(report.framesReceived >= 8, `heard ${report.framesReceived} of ${report.framesSent} frames`);
    assert.deepEqual(report.errors, {});
    // Everything the device was told, as text: the OTA's answer, the decoded username and
    // every MQTT message (hello reply, tts, goodbye).
    const told = JSON.stringify([report.ota, report.username, report.messages]);
    assert.doesNotMatch(told, LOOPBACK);
    // The box printed the request it answered, with where it came from.
    await output.waitFor(
      new RegExp(`^OTA: provisioned 02:00:00:1e:15:01 from ${DEVICE.replaceAll(".", "\\.")} `),
      5000,
      exited,
    );
  });

  test("the box serves devices on the LAN address only: not on its other address, not its health or verifier", async () => {
    if (!lan || !box) assert.fail("no namespaces");
    const fromDevice = await lanHost<Record<string, ProbeResult>>(lan, [
      "probe",
      `tcp:${OTHER}:${BROKER_PORT}`,
      `tcp:${OTHER}:${OTA_PORT}`,
      ...PORTS.map((p) => `udp:${OTHER}:${p.udpPort}`),
      ...PORTS.map((p) => `tcp:${PUBLIC}:${p.healthPort}`),
      `tcp:${PUBLIC}:${VERIFIER_PORT}`,
    ]);
    for (const [target, result] of Object.entries(fromDevice)) assert.equal(result, "refused", target);
    // On the box itself: the broker, the OTA and the UDP ports are on the LAN address
    // alone, so a client on the box uses that address too (the gateways do: MQTT_URL).
    const onBox = await lanHost<Record<string, ProbeResult>>(box, [
      "probe",
      `tcp:127.0.0.1:${BROKER_PORT}`,
      `tcp:127.0.0.1:${OTA_PORT}`,
      ...PORTS.map((p) => `udp:127.0.0.1:${p.udpPort}`),
      `tcp:${PUBLIC}:${BROKER_PORT}`,
      `tcp:127.0.0.1:${PORTS[0]?.healthPort}`,
    ]);
    assert.deepEqual(onBox, {
      [`tcp:127.0.0.1:${BROKER_PORT}`]: "refused",
      [`tcp:127.0.0.1:${OTA_PORT}`]: "refused",
      ...Object.fromEntries(PORTS.map((p) => [`udp:127.0.0.1:${p.udpPort}`, "refused"])),
      [`tcp:${PUBLIC}:${BROKER_PORT}`]: "open",
      [`tcp:127.0.0.1:${PORTS[0]?.healthPort}`]: "open",
    });
  });

  test("SIGTERM stops the whole box, its output gone: nothing it started is left in its namespace", async () => {
    if (!box || !boxProcess) assert.fail("no box");
    // Nobody reads its output any more (a `| tee` ended by the same Ctrl-C, or this test
    // killed: the box then gets SIGTERM from setpriv): its teardown must not stop at EPIPE.
    boxProcess.stdout?.destroy();
    boxProcess.stderr?.destroy();
    boxProcess.kill("SIGTERM");
    assert.equal(await exited, 0, output.lines.join("\n"));
    // At its exit, only the namespace's holder remains: no PM2 daemon, gateway, verifier or
    // broker. The box waits for what it stopped to be gone (local-box-leftovers.test.ts).
    assert.deepEqual(leftIn(box), [], output.lines.join("\n"));
  });
});

test("a bind-all --public-host (0.0.0.0, ::) is refused before anything starts: devices would be told it", () => {
  refusedBeforeStart(["0.0.0.0", "::"], /--public-host .* is no address a device can reach/);
});

test("an IPv6 --public-host is refused before anything starts: firmware would read the endpoint's host up to its first ':'", () => {
  refusedBeforeStart(
    ["fd00::5", "[fd00::5]"],
    /--public-host .* is an IPv6 address, which firmware cannot be told/,
  );
});

/** Each of `hosts` as `--public-host` ends `up` with status 1 and `refusal` on stderr, before it writes anything. */
function refusedBeforeStart(hosts: readonly string[], refusal: RegExp): void {
  for (const host of hosts) {
    const runDir = path.join(ROOT, ".run", `test-lan-box-wildcard-${process.pid}`);
    const res = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "tools/local-box.ts",
        "up",
        "--devices",
        "0",
        "--public-host",
        host,
        "--run-dir",
        runDir,
      ],
      { cwd: ROOT, encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(res.status, 1, `${res.stdout}${res.stderr}`);
    assert.match(res.stderr, refusal);
    assert.equal(existsSync(runDir), false, "it wrote its run folder");
  }
}
