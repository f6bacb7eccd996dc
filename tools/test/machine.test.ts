/**
 * The benchmarks' `machine:` line (tools/load/machine.ts): the CPU generation read from
 * /proc/cpuinfo, because the model name alone ("AMD EPYC") does not tell parts apart.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { cpuGeneration, describeMachine } from "../load/machine.ts";

const EPYC = [
  "processor\t: 0",
  "vendor_id\t: AuthenticAMD",
  "cpu family\t: 26",
  "model\t\t: 2",
  "model name\t: AMD EPYC",
  "stepping\t: 1",
  "",
  "processor\t: 1",
  "cpu family\t: 26",
  "model\t\t: 2",
].join("\n");

describe("machine line (bench tools)", () => {
  it("reads the family and the model, not the model name", () => {
    assert.equal(cpuGeneration(EPYC), "family 26, model 2");
  });

  it("reads nothing from a cpuinfo without them (an ARM kernel's, for one)", () => {
    assert.equal(cpuGeneration("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n"), undefined);
  });

  it("names this machine's generation where its kernel reports one", () => {
    const generation = cpuGeneration(readFileSync("/proc/cpuinfo", "utf8"));
    const line = describeMachine();
    assert.match(line, / x \d+, \d+ GiB, Node v\d+/);
    if (generation) assert.ok(line.includes(`(${generation})`), line);
  });
});
