/**
 * stopMarked (tools/local-box/processes.ts): the box's last step, which returns only once
 * nothing marked for its run folder runs. A process is found by the mark in its
 * environment, but one on its way out loses its environment before it is gone; one seen
 * marked is therefore followed by its pid and start time until it is a zombie or gone.
 * Real processes; the stand-in drops its mark by exec'ing itself without it, alive.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { eventually } from "../../gateway/test/support/stack.ts";
import { environ, RUN_DIR_MARK, running, stopMarked } from "../local-box/processes.ts";

test("a process seen marked is stopped even after its mark is gone from its environment", async (t) => {
  const runDir = mkdtempSync(path.join(tmpdir(), "test-stop-marked-"));
  const mark = `${RUN_DIR_MARK}=${runDir}`;
  // SIGTERM ignored (kept across exec), then, 300 ms in, the same pid with no environment.
  const child = spawn("sh", ["-c", `trap '' TERM; sleep 0.3; exec env -i sleep 60`], {
    env: { PATH: process.env.PATH ?? "", [RUN_DIR_MARK]: runDir },
    stdio: "ignore",
  });
  const pid = child.pid as number;
  t.after(() => {
    if (running(pid)) process.kill(pid, "SIGKILL");
    rmSync(runDir, { recursive: true, force: true });
  });
  await eventually(() => environ(pid).includes(mark), 5000, "the child marked");
  const left = await stopMarked(runDir, { graceMs: 1000, signal: "SIGTERM" });
  assert.deepEqual(left, []);
  assert.equal(running(pid), false, "stopMarked returned with the process still running");
});
