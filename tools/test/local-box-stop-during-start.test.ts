/**
 * The local box stopped while it is still starting: Ctrl-C during the bundle build, a closed
 * terminal (SIGHUP) while PM2 starts the gateways or while the devices provision, then a
 * second Ctrl-C during the teardown. It must stop what it has started so far and exit 0: no
 * PM2 daemon, gateway, verifier or broker left, its pid file gone. Before, the signal
 * handlers were set at the end of start-up and their teardown read timers set later still:
 * a signal before them ended the box at once (Node's default), one during device
 * provisioning threw in the handler, and either way PM2's daemon and the gateways (out of
 * the terminal's reach) were left running. A second Ctrl-C reached the teardown's `pm2 kill`
 * (same process group) and ended it mid-kill, the daemon and gateways left again.
 *
 * Each case runs a real box (real broker, PM2, gateways, OTA, one simulated device) in a
 * network namespace and run folder of its own (support/local-box.ts), and signals its
 * process group, as a terminal does, as soon as it prints the line that starts the step to
 * interrupt. */
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { createNamespace } from "../../gateway/test/support/netns.ts";
import { eventually } from "../../gateway/test/support/stack.ts";
import {
  commandLine,
  type LocalBox,
  leftIn,
  startLocalBox,
  untilTeardownKillsPm2,
} from "./support/local-box.ts";

interface Case {
  readonly what: string;
  /** The line after which the signal is sent: the step it interrupts begins there. */
  readonly after: RegExp;
  readonly signal: NodeJS.Signals;
  /** Waits, after that line, until a process of the box's with this command line runs. */
  readonly during?: RegExp;
  /** Sent again once PM2's daemon is being killed: the teardown must not be cut short. */
  readonly again?: NodeJS.Signals;
}

const CASES: readonly Case[] = [
  { what: "Ctrl-C during the bundle build", after: /^building the gateway bundle/, signal: "SIGINT" },
  {
    what: "a closed terminal while PM2 starts the gateways",
    after: /^broker listening on /,
    // While PM2's CLI starts them: the hang-up reached it too, and a CLI killed mid-start
    // was taken for a failed start (exit 1).
    during: /\bpm2 start\b/,
    signal: "SIGHUP",
  },
  {
    what: "a closed terminal while the devices provision, then Ctrl-C while PM2 stops the gateways",
    after: /^OTA endpoint \(development only\)/,
    signal: "SIGHUP",
    again: "SIGINT",
  },
];

describe("the local box stopped during start-up stops what it started and exits", () => {
  CASES.forEach((c, i) => {
    test(c.what, { timeout: 180_000 }, async (t) => {
      if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces)");
      const runDir = path.join(tmpdir(), `test-box-stop-${process.pid}-${i}`);
      rmSync(runDir, { recursive: true, force: true });
      const ns = await createNamespace("box");
      let box: LocalBox | undefined;
      t.after(async () => {
        // Whatever a failed stop left (the box, its PM2 daemon and apps, its broker) is
        // killed with the namespace.
        if (box && box.process.exitCode === null && box.process.signalCode === null)
          box.process.kill("SIGKILL");
        await ns.destroy();
        rmSync(runDir, { recursive: true, force: true });
      });
      // Signals go to the box's process group, as a terminal sends them: they reach the
      // broker and a PM2 CLI under way too.
      box = startLocalBox(ns, ["--devices", "1", "--run-dir", runDir], { processGroup: true });
      const pid = box.process.pid;
      if (pid === undefined) assert.fail("the box did not start");
      const signalGroup = (signal: NodeJS.Signals) => process.kill(-pid, signal);
      await box.output.waitFor(c.after, 120_000, box.exited);
      const during = c.during;
      if (during)
        await eventually(
          () => ns.pids().some((pid) => during.test(commandLine(pid) ?? "")),
          30_000,
          `a process matching ${during}`,
        );
      signalGroup(c.signal);
      if (c.again) {
        // While `pm2 kill` runs: a second Ctrl-C reached that CLI, and it died mid-kill. A
        // box that ended without getting there fails below.
        if (await untilTeardownKillsPm2(box, ns, 30_000)) signalGroup(c.again);
      }
      const code = await box.exited;
      const printed = box.output.lines.join("\n");
      assert.equal(code, 0, `exit code ${code}${code === null ? " (the signal ended it)" : ""}:\n${printed}`);
      assert.deepEqual(leftIn(ns), [], `left running in the box's namespace:\n${printed}`);
      assert.equal(existsSync(path.join(runDir, "local-box.pid")), false, "its pid file is left");
    });
  });
});
