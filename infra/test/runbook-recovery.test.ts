/**
 * docs/runbook.md, "If `pulumi up` stopped at the readiness timeout", against the real
 * Pulumi CLI and engine (scripts/build-pulumi.sh builds them): the failed replacement is
 * made by the engine itself, and the runbook's commands run as the runbook prints them
 * (read from the runbook, not copied here).
 *
 * What is real: the `pulumi` CLI and its engine, the local (file) state backend, the
 * @pulumi/pulumi and @pulumi/digitalocean SDKs, the readiness probe (infra/readiness.ts) on
 * real sockets, jq. What stands in: the `digitalocean` provider (runbook-recovery/
 * fake-digitalocean.ts: it records the calls instead of calling DigitalOcean), the Node.js
 * language host (tools/pulumi/language-nodejs: Pulumi's is not on the module proxy), and
 * the program, which is the gateway slot of infra/fleet-stack.ts in miniature
 * (runbook-recovery/program.ts). The scratch project and the commands run in it are
 * runbook-recovery/cli-stack.ts.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CliStack,
  DROPLET,
  ensurePulumiCli,
  OLD_DROPLET_URN,
  pulumiBinDir,
  type Result,
  root,
  type StateResource,
  summary,
} from "./runbook-recovery/cli-stack.ts";

/** The runbook's commands for this situation, as printed there. */
function runbookCommands(): { recognise: string; option2: string } {
  const doc = readFileSync(path.join(root, "docs/runbook.md"), "utf8");
  const start = doc.indexOf("### If `pulumi up` stopped at the readiness timeout");
  const end = doc.indexOf("\n### ", start + 1);
  assert.ok(start >= 0 && end > start, "the runbook has the section");
  const section = doc.slice(start, end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    (m[1] ?? "")
      .split("\n")
      .map((l) => l.replace(/^ {3}/, ""))
      .join("\n"),
  );
  const recognise = blocks[0]?.split("\n").find((l) => l.startsWith("pulumi stack export | jq"));
  const option2 = blocks[1] ?? "";
  assert.ok(recognise, "the section's first block has the pulumi stack export | jq line");
  assert.ok(option2.includes("pulumi stack import"), "the section's second block is option 2");
  return { recognise, option2 };
}

ensurePulumiCli();

describe("runbook: a replacement stopped at the readiness timeout (real Pulumi CLI)", () => {
  const stack = new CliStack();
  const commands = runbookCommands();
  const pulumi = (...args: string[]): Promise<Result> => stack.pulumi(...args);
  const shell = (command: string): Promise<Result> => stack.shell(command);
  const up = (): Promise<Result> => stack.up();
  const dropletReady = (n: number): Promise<void> => stack.dropletReady(n);
  const callsDuring: CliStack["callsDuring"] = (step) => stack.callsDuring(step);
  const stateResources = (): Promise<StateResource[]> => stack.stateResources();

  before(async () => {
    await stack.create();

    // A first `up` whose droplet (1001) gets ready: the reserved IP is on it.
    stack.knobs.userData = "#cloud-config v1";
    await dropletReady(1);
    const first = await callsDuring(up);
    assert.equal(first.result.code, 0, first.result.output);
    assert.deepEqual(summary(first.calls).sort(), [
      "create Droplet 1001",
      "create ReservedIp 192.0.2.10",
      "create ReservedIpAssignment 192.0.2.10-1001",
    ]);
  });

  after(() => stack.close());

  test("a new user data whose droplet never gets ready: `up` fails after creating it, and the engine marks the serving droplet pending deletion", async () => {
    stack.knobs.userData = "#cloud-config v2";
    const { result, calls: made } = await callsDuring(up);
    assert.notEqual(result.code, 0, result.output);
    assert.match(result.output, /gateway 127\.0\.0\.12 did not open its device listener/);
    assert.deepEqual(
      summary(made),
      ["create Droplet 1002"],
      "the new droplet only: nothing deleted, IP not moved",
    );

    const droplets = (await stateResources()).filter((r) => r.type === DROPLET);
    assert.deepEqual(
      droplets.map((r) => [r.urn, r.id, r.delete === true]),
      [
        [OLD_DROPLET_URN, "1002", false],
        [OLD_DROPLET_URN, "1001", true],
      ],
      "two droplets under one URN, the old one (which holds the IP) with delete: true",
    );
    // Every later test starts from this state (the runbook's situation).
    const saved = await pulumi("stack", "export", "--file", "failed.json");
    assert.equal(saved.code, 0, saved.output);
  });

  test("the runbook's recognise command lists the old droplet, and only it", async () => {
    const listed = await shell(commands.recognise);
    assert.equal(listed.code, 0, listed.output);
    assert.equal(listed.output, `${DROPLET} 1001 ${OLD_DROPLET_URN}\n`);
  });

  test("`pulumi state delete <urn>` refuses the shared URN without a terminal, and in one asks which id", async () => {
    const refused = await pulumi("state", "delete", OLD_DROPLET_URN, "--yes");
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.output,
      /Resource URN ambiguously referred to multiple resources\. Did you mean:\n\s+1002\n\s+1001\n/,
    );
    assert.equal((await stateResources()).filter((r) => r.type === DROPLET).length, 2, "nothing removed");

    // In a terminal (script(1) gives it one; CI=true alone would make the CLI non-interactive)
    // the CLI lists the ids, the old one marked "(Pending Deletion)"; typing its id picks it.
    const { CI: _ci, ...terminalEnv } = stack.env();
    const picked = await new Promise<Result>((resolve) => {
      const command = [path.join(pulumiBinDir, "pulumi"), "state", "delete", OLD_DROPLET_URN, "--yes"]
        .map((a) => `'${a}'`)
        .join(" ");
      const child = spawn("script", ["-qfec", command, "/dev/null"], {
        cwd: stack.work,
        env: { ...terminalEnv, TERM: "xterm" },
        timeout: 60_000,
      });
      let output = "";
      const answered = new Set<string>();
      // Query -> a terminal's answer. The CLI asks the terminal for its background colour
      // and the cursor position and waits seconds for an answer that never comes otherwise.
      const answers: [string, string][] = [
        ["\x1b]11;?", "\x1b]11;rgb:0000/0000/0000\x1b\\"],
        ["\x1b[6n", "\x1b[1;1R"],
        // The picker: type the old droplet's id (it filters the list), Enter.
        ["please select the one to edit", "1001\r"],
      ];
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        for (const [query, answer] of answers) {
          if (answered.has(query) || !output.includes(query)) continue;
          answered.add(query);
          child.stdin.write(answer);
        }
      });
      child.on("close", (code) => resolve({ code: code ?? 1, output }));
    });
    assert.equal(picked.code, 0, picked.output);
    assert.match(picked.output, /"1001" \(Pending Deletion\)/);
    assert.match(picked.output, /Resource deleted/);
    const left = (await stateResources()).filter((r) => r.type === DROPLET);
    assert.deepEqual(
      left.map((r) => [r.id, r.delete === true]),
      [["1002", false]],
      "only the pending deletion is gone",
    );

    const restored = await pulumi("stack", "import", "--file", "failed.json");
    assert.equal(restored.code, 0, restored.output);
  });

  test("`pulumi up` again while the new droplet is still not ready fails at the same point and deletes nothing", async () => {
    const { result, calls: made } = await callsDuring(up);
    assert.notEqual(result.code, 0, result.output);
    assert.match(result.output, /gateway 127\.0\.0\.12 did not open its device listener/);
    assert.deepEqual(summary(made), [], "the old droplet keeps serving");
  });

  test("option 1 (fix forward): once the new droplet is ready, `pulumi up` moves the address first and deletes the old droplet last", async () => {
    await dropletReady(2);
    const { result, calls: made } = await callsDuring(up);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(summary(made), [
      "create ReservedIpAssignment 192.0.2.10-1002",
      "delete ReservedIpAssignment 192.0.2.10-1001",
      "delete Droplet 1001",
    ]);
    // Before Pulumi 3.46.0 (pulumi/pulumi#11027) the engine deleted pending deletions first.
    assert.doesNotMatch(result.output, /completing deletion from previous update/);

    const restored = await pulumi("stack", "import", "--file", "failed.json");
    assert.equal(restored.code, 0, restored.output);
  });

  test("option 2, as printed: export, back up, drop the pending droplet with jq, import", async () => {
    const { result, calls: made } = await callsDuring(() => shell(commands.option2));
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(made, [], "state only: no provider call");
    assert.equal(
      readFileSync(path.join(stack.work, "state.backup.json"), "utf8"),
      readFileSync(path.join(stack.work, "state.json"), "utf8"),
    );

    type Deployment = { deployment: { resources: StateResource[] } };
    const exported = JSON.parse(readFileSync(path.join(stack.work, "state.json"), "utf8")) as Deployment;
    const fixed = JSON.parse(readFileSync(path.join(stack.work, "state.fixed.json"), "utf8")) as Deployment;
    assert.deepEqual(
      fixed.deployment.resources,
      exported.deployment.resources.filter((r) => !(r.type === DROPLET && r.id === "1001")),
      "exactly the old droplet dropped, everything else as exported",
    );
    const now = await stateResources();
    assert.ok(!now.some((r) => r.delete === true), "no pending deletion left");
    // Sorted: the state lists the address and the new droplet in the order their creation
    // finished in the failed update (neither depends on the other), which varies.
    assert.deepEqual(
      now
        .filter((r) => r.type.startsWith("digitalocean:"))
        .map((r) => r.id)
        .sort(),
      ["1002", "192.0.2.10", "192.0.2.10-1001"],
      "the failed droplet stays Pulumi's; the address is still assigned to the old one",
    );
  });

  test("then the fixed `pulumi up` replaces the failed droplet, moves the address, and never deletes the old one", async () => {
    stack.knobs.userData = "#cloud-config v3 (the fix)";
    await dropletReady(3);
    const { result, calls: made } = await callsDuring(up);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(summary(made), [
      "create Droplet 1003",
      "create ReservedIpAssignment 192.0.2.10-1003",
      "delete ReservedIpAssignment 192.0.2.10-1001",
      "delete Droplet 1002",
    ]);
    const droplets = (await stateResources()).filter((r) => r.type === DROPLET);
    assert.deepEqual(
      droplets.map((r) => r.id),
      ["1003"],
    );
  });

  /** Droplet `from` replaced by a ready `to`: the address moves first, the old droplet goes last. */
  const replacement = (from: number, to: number): string[] => [
    `create Droplet ${to}`,
    `create ReservedIpAssignment 192.0.2.10-${to}`,
    `delete ReservedIpAssignment 192.0.2.10-${from}`,
    `delete Droplet ${from}`,
  ];

  // docs/runbook.md, `sshKeyFingerprints`: a key change replaces every unpinned droplet (the
  // provider sets keys only at creation: `ssh_keys` is ForceNew), pinned slots keep theirs.
  test("a new admin SSH key on a pinned slot: `pulumi up` leaves its droplet alone", async () => {
    stack.knobs.pinned = true;
    stack.knobs.sshKeys += ",9a:0c:51:7e:22:d4:6b:13:f8:85:2e:c1:70:4b:9d:36";
    const { result, calls: made } = await callsDuring(up);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(summary(made), [], "PINNED_IGNORED holds sshKeys: nothing created, updated or deleted");
  });

  test("the same key change on the slot unpinned replaces its droplet: the new one takes the address once ready, the old one goes last", async () => {
    stack.knobs.pinned = false;
    await dropletReady(4);
    const { result, calls: made } = await callsDuring(up);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(summary(made), replacement(1003, 1004));
  });

  test("a new VPC replaces even a pinned slot's droplet (PINNED_IGNORED leaves vpcUuid, ForceNew, alone)", async () => {
    stack.knobs.pinned = true;
    stack.knobs.vpc = "vpc-2";
    await dropletReady(5);
    const { result, calls: made } = await callsDuring(up);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(summary(made), replacement(1004, 1005));
  });
});
