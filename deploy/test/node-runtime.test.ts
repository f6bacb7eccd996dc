/** The Node that travels in the bundle: what the build accepts and what it refuses. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  checkNodeRuntime,
  hostNodeRuntime,
  type NodeRuntimeFacts,
  parseLdd,
  satisfies,
} from "../node-runtime.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const ENGINES = (
  JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { engines: { node: string } }
).engines.node;

const OFFICIAL: NodeRuntimeFacts = {
  execPath: "/usr/local/bin/node",
  version: "v20.20.2",
  platform: "linux",
  arch: "x64",
  releaseName: "node",
  headers: true,
  libraries: parseLdd(
    [
      "\tlinux-vdso.so.1 (0x00007efea276c000)",
      "\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007efea2756000)",
      "\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007efea2400000)",
      "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007efea2676000)",
      "\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007efea2656000)",
      "\tlibpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007efea2651000)",
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007efea221e000)",
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007efea276e000)",
    ].join("\n"),
  ),
};

describe("the Node runtime the bundle carries", () => {
  test("the Node running these tests can travel (it is the one the bundle carries)", () => {
    checkNodeRuntime(hostNodeRuntime(), ENGINES);
  });

  test("an official-layout linux-x64 build inside the engines range passes", () => {
    checkNodeRuntime(OFFICIAL, ">=20.19 <23");
  });

  test("a distribution build linked to libnode is refused, naming the libraries", () => {
    const distro = { ...OFFICIAL, libraries: [...OFFICIAL.libraries, "libnode.so.109", "libuv.so.1"] };
    assert.throws(
      () => checkNodeRuntime(distro, ">=20.19 <23"),
      /shared libraries a fresh droplet lacks: libnode\.so\.109, libuv\.so\.1/,
    );
  });

  test("a version outside engines.node is refused", () => {
    assert.throws(
      () => checkNodeRuntime({ ...OFFICIAL, version: "v18.19.1" }, ">=20.19 <23"),
      /v18\.19\.1 is outside/,
    );
  });

  test("another platform, no headers, or not <prefix>/bin/node is refused, each named", () => {
    const bad = { ...OFFICIAL, arch: "arm64", headers: false, execPath: "/opt/node20" };
    assert.throws(
      () => checkNodeRuntime(bad, ">=20.19 <23"),
      (e: Error) =>
        /linux-arm64 build/.test(e.message) &&
        /no headers/.test(e.message) &&
        /is not <prefix>\/bin\/node/.test(e.message),
    );
  });

  test("engines ranges: comparators all hold, alternatives any", () => {
    assert.equal(satisfies("v20.19.0", ">=20.19 <23"), true);
    assert.equal(satisfies("v20.18.9", ">=20.19 <23"), false);
    assert.equal(satisfies("v23.0.0", ">=20.19 <23"), false);
    assert.equal(satisfies("v22.1.0", "<19 || >=22"), true);
    assert.equal(satisfies("v20.0.0", "<19 || >=22"), false);
    assert.throws(() => satisfies("v20.0.0", "^20"), /cannot read "\^20"/);
  });
});
