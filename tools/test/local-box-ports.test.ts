/**
 * The local box started where one of its ports is held, or with a --public-host that is not
 * an address of this machine: it must say which port (or address), start nothing, and exit
 * 1 with nothing of its own left. Before, a held broker port gave "broker exited with code
 * 1 before listening", a held gateway UDP port a 30 s wait then "gateway at
 * http://127.0.0.1:9001 not ready", and health ports held by another box's gateways
 * (anything answering 200) passed its readiness check: it printed "4 gateway instances
 * ready" and ran on with gateways crash-looping.
 *
 * Each case runs a real box (`--devices 0`) in a network namespace and run folder of its
 * own (support/local-box.ts); the port is held by a small Node process in that namespace.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { createNamespace, type NetNamespace } from "../../gateway/test/support/netns.ts";
import { leftIn, startLocalBox } from "./support/local-box.ts";

/** Holds `protocol` `port` on 127.0.0.1 in `ns` (TCP: answering every HTTP request 200). */
async function holdPort(ns: NetNamespace, protocol: "tcp" | "udp", port: number): Promise<ChildProcess> {
  const script =
    protocol === "udp"
      ? `require("dgram").createSocket("udp4").bind(${port}, "127.0.0.1", () => console.log("held"))`
      : `require("http").createServer((q, r) => r.end("{}")).listen(${port}, "127.0.0.1", () => console.log("held"))`;
  const holder = ns.spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await once(holder.stdout as NodeJS.ReadableStream, "data");
  return holder;
}

interface Case {
  readonly what: string;
  readonly hold?: { readonly protocol: "tcp" | "udp"; readonly port: number };
  readonly args?: readonly string[];
  /** What the box's error must say. */
  readonly says: RegExp;
}

const CASES: readonly Case[] = [
  {
    what: "the broker's port",
    hold: { protocol: "tcp", port: 1883 },
    says: /127\.0\.0\.1:1883\/tcp \(broker \(--broker-port\)\) is in use/,
  },
  {
    what: "a gateway's UDP port",
    hold: { protocol: "udp", port: 8883 },
    says: /127\.0\.0\.1:8883\/udp \(gateway-3 UDP\) is in use/,
  },
  {
    what: "a gateway's health port, held by a server that answers 200 (another box's gateway)",
    hold: { protocol: "tcp", port: 9001 },
    says: /127\.0\.0\.1:9001\/tcp \(gateway-1 health\) is in use/,
  },
  {
    what: "the verifier's port",
    hold: { protocol: "tcp", port: 9100 },
    says: /127\.0\.0\.1:9100\/tcp \(device verifier\) is in use/,
  },
  {
    what: "the OTA's port",
    hold: { protocol: "tcp", port: 8002 },
    says: /127\.0\.0\.1:8002\/tcp \(OTA \(--ota-port\)\) is in use/,
  },
  {
    what: "a --public-host that is no address of this machine",
    args: ["--public-host", "10.77.9.9"],
    says: /10\.77\.9\.9 is not an address of this machine/,
  },
];

describe("the local box refuses to start where it cannot listen, and says where", () => {
  for (const c of CASES)
    test(c.what, { timeout: 60_000 }, async (t) => {
      if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces)");
      const runDir = path.join(tmpdir(), `test-box-ports-${process.pid}`);
      rmSync(runDir, { recursive: true, force: true });
      const ns = await createNamespace("ports");
      t.after(async () => {
        await ns.destroy();
        rmSync(runDir, { recursive: true, force: true });
      });
      const holder = c.hold ? await holdPort(ns, c.hold.protocol, c.hold.port) : undefined;
      const box = startLocalBox(ns, ["--devices", "0", "--run-dir", runDir, ...(c.args ?? [])]);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"still running">((resolve) => {
        timer = setTimeout(() => resolve("still running"), 20_000);
      });
      const code = await Promise.race([box.exited, late]);
      clearTimeout(timer);
      if (code === "still running") box.process.kill("SIGTERM");
      const printed = box.output.lines.join("\n");
      assert.notEqual(code, "still running", `the box still ran 20 s after its start:\n${printed}`);
      assert.equal(code, 1, printed);
      assert.match(printed, c.says);
      assert.match(printed, /nothing was started/);
      assert.doesNotMatch(printed, /building the gateway bundle|gateway instances ready/);
      const left = leftIn(ns).filter((p) => !p.startsWith(`${holder?.pid} `));
      assert.deepEqual(left, [], `left running at the box's exit:\n${printed}`);
    });
});
