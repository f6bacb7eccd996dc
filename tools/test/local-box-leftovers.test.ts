/**
 * What a local box leaves behind, and what stops it. The box's exit must mean that nothing
 * it started is left: PM2's daemon goes after `pm2 kill` has returned, and the box exited
 * before that (CI saw one pid left in the namespace at the box's exit). A box killed with
 * SIGKILL (`kill -9`, the OOM killer, `script` whose terminal closed: SIGTERM, then SIGKILL
 * 2 s later) runs no teardown: its PM2 daemon, the gateways, the verifier and the broker
 * stay, the broker on its port; the next `npm stop` or `npm start` must stop them and say
 * so. Before, `npm stop` killed PM2 only and said "local box stopped" with the broker left;
 * `npm start` failed on the broker's port. Either runs `pm2 kill` once: `npm stop` ran it
 * twice (for what the dead box left, then again for a daemon without the mark), and the
 * second, with the daemon gone, started one of its own to talk to. A PM2 daemon of the
 * box's home that does not answer `pm2 start` ends the start-up with one error, and the
 * box stops what it started: before, `npm start` hung there for ever without a word. One
 * that does not answer `npm stop`'s `pm2 kill` and carries no mark still runs after it:
 * `npm stop` says so and exits 1, where it said "local box stopped".
 *
 * Each case runs a real box (real broker, PM2, gateways, verifier, OTA; no devices) in a
 * network namespace and run folder of its own (support/local-box.ts).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createNamespace, type NetNamespace } from "../../gateway/test/support/netns.ts";
import { markedProcesses } from "../local-box/processes.ts";
import { pm2, ROOT } from "../pm2.ts";
import {
  type LocalBox,
  leftIn,
  runLocalBoxCommand,
  startLocalBox,
  watchProcesses,
} from "./support/local-box.ts";

const READY = /^OTA endpoint \(development only\)/;
/** The command line of a PM2 CLI killing its daemon. */
const PM2_KILL = /\bpm2 kill$/;

/**
 * A PM2 daemon of the run folder's PM2 home that does not answer (SIGSTOPped), started by
 * the test, not by a box: it carries no mark, so a box's stop of what a dead box left does
 * not stop it, and only `pm2 kill` and `pm2 start` reach it. SIGKILLed after the case.
 */
async function stuckDaemonOfNoBox(t: { after: (fn: () => void) => void }, runDir: string): Promise<void> {
  const home = path.join(runDir, "pm2");
  await pm2(["ping"], { home });
  const daemon = Number(readFileSync(path.join(home, "pm2.pid"), "utf8"));
  t.after(() => process.kill(daemon, "SIGKILL"));
  process.kill(daemon, "SIGSTOP");
}

/** A namespace and run folder for one case, and every box it starts, all gone after it. */
async function boxPlace(t: { after: (fn: () => Promise<void>) => void }, name: string) {
  if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces)");
  const runDir = path.join(tmpdir(), `test-box-leftovers-${process.pid}-${name}`);
  rmSync(runDir, { recursive: true, force: true });
  const ns = await createNamespace("box");
  const boxes: LocalBox[] = [];
  t.after(async () => {
    for (const box of boxes)
      if (box.process.exitCode === null && box.process.signalCode === null) box.process.kill("SIGKILL");
    await ns.destroy();
    rmSync(runDir, { recursive: true, force: true });
  });
  const args = ["--devices", "0", "--run-dir", runDir];
  return {
    ns,
    runDir,
    start(options: Parameters<typeof startLocalBox>[2] = {}): LocalBox {
      const box = startLocalBox(ns, args, options);
      boxes.push(box);
      return box;
    },
    down: () => runLocalBoxCommand(ns, "down", ["--run-dir", runDir]),
  };
}

/** The namespace's listening TCP and bound UDP sockets, one line each. */
function sockets(ns: NetNamespace): string[] {
  return ns
    .run("ss", ["-Htuln"])
    .split("\n")
    .filter((l) => l.trim() !== "");
}

async function killHard(box: LocalBox, ns: NetNamespace): Promise<string[]> {
  box.process.kill("SIGKILL");
  await box.exited;
  return leftIn(ns);
}

/**
 * SIGTERM, as `npm stop` sends it: the box exits 0 within `withinMs`, and at that moment
 * nothing of it is left.
 */
async function stopAndCheck(
  box: LocalBox,
  ns: NetNamespace,
  runDir: string,
  withinMs = 60_000,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"still stopping">((resolve) => {
    timer = setTimeout(() => resolve("still stopping"), withinMs);
  });
  box.process.kill("SIGTERM");
  const code = await Promise.race([box.exited, late]);
  clearTimeout(timer);
  const printed = box.output.lines.join("\n");
  assert.notEqual(code, "still stopping", `still stopping ${withinMs} ms after SIGTERM:\n${printed}`);
  assert.deepEqual(leftIn(ns), [], `left running at the box's exit:\n${printed}`);
  assert.equal(code, 0, printed);
  assert.equal(existsSync(path.join(runDir, "local-box.pid")), false, "its pid file is left");
}

test("the box exits once everything it stopped is gone: a PM2 daemon that hangs at its exit is SIGKILLed after a grace", {
  timeout: 180_000,
}, async (t) => {
  const place = await boxPlace(t, "exit");
  const box = place.start({
    env: {
      PM2_NODE_OPTIONS: `--require ${path.join(ROOT, "tools/test/support/pm2-daemon-hangs-at-exit.cjs")}`,
    },
  });
  await box.output.waitFor(READY, 120_000, box.exited);
  await stopAndCheck(box, place.ns, place.runDir);
  assert.match(box.output.lines.join("\n"), /SIGKILL: \d+ PM2 .*God Daemon/);
});

test("the box stops even when its PM2 daemon does not answer (SIGSTOPped): `pm2 kill` is given up after its bound, and the daemon and gateways are SIGKILLed", {
  timeout: 180_000,
}, async (t) => {
  const place = await boxPlace(t, "stuck");
  const box = place.start();
  await box.output.waitFor(READY, 120_000, box.exited);
  const daemon = markedProcesses(place.runDir).find((p) => p.command.includes("God Daemon"));
  assert.ok(daemon, "no PM2 daemon carries the box's mark");
  process.kill(daemon.pid, "SIGSTOP");
  await stopAndCheck(box, place.ns, place.runDir, 15_000);
  assert.deepEqual(sockets(place.ns), [], "sockets left open");
  assert.match(box.output.lines.join("\n"), /did not answer `pm2 kill`/);
});

test("npm stop after the box was SIGKILLed stops what it left (PM2 daemon, gateways, verifier, broker), frees its ports and says so; a new box then starts", {
  timeout: 240_000,
}, async (t) => {
  const place = await boxPlace(t, "stop");
  const first = place.start();
  await first.output.waitFor(READY, 120_000, first.exited);
  const left = await killHard(first, place.ns);
  // What the test is about: the kill left the daemon and the broker running.
  assert.ok(
    left.some((l) => /God Daemon/.test(l)) && left.some((l) => /local-broker/.test(l)),
    left.join("\n"),
  );
  const kills = watchProcesses(place.ns, PM2_KILL);
  const stop = await place.down();
  const killed = kills.stop();
  assert.deepEqual(leftIn(place.ns), [], stop.output);
  assert.deepEqual(sockets(place.ns), [], "sockets left open");
  assert.equal(stop.status, 0, stop.output);
  assert.match(stop.output, /ended without stopping .*stopping what it left/);
  assert.equal(existsSync(path.join(place.runDir, "local-box.pid")), false, "its pid file is left");
  // Once: a second `pm2 kill`, with the daemon gone, started a daemon of its own to talk to.
  assert.equal(
    killed.length,
    1,
    `\`pm2 kill\` ran ${killed.length} times:\n${killed.join("\n")}\n${stop.output}`,
  );
  const second = place.start();
  await second.output.waitFor(READY, 120_000, second.exited);
  await stopAndCheck(second, place.ns, place.runDir);
});

test("npm start after the box was SIGKILLed while PM2 started the gateways (a terminal closed under `script`) stops what it left, then starts", {
  timeout: 240_000,
}, async (t) => {
  const place = await boxPlace(t, "start");
  const first = place.start();
  await first.output.waitFor(/^broker listening on /, 120_000, first.exited);
  const left = await killHard(first, place.ns);
  assert.ok(
    left.some((l) => /local-broker/.test(l)),
    left.join("\n"),
  );
  const kills = watchProcesses(place.ns, PM2_KILL);
  const second = place.start();
  await second.output.waitFor(READY, 120_000, second.exited);
  const killed = kills.stop();
  assert.match(second.output.lines.join("\n"), /ended without stopping .*stopping what it left/);
  assert.ok(killed.length <= 1, `\`pm2 kill\` ran ${killed.length} times:\n${killed.join("\n")}`);
  await stopAndCheck(second, place.ns, place.runDir);
});

test("npm start on a PM2 daemon of its home that does not answer (SIGSTOPped, started by no box) says what did not answer and what to do, stops what it started and exits 1", {
  timeout: 240_000,
}, async (t) => {
  const place = await boxPlace(t, "start-stuck");
  await stuckDaemonOfNoBox(t, place.runDir);
  const box = place.start();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"still running">((resolve) => {
    timer = setTimeout(() => resolve("still running"), 150_000);
  });
  const code = await Promise.race([box.exited, late]);
  clearTimeout(timer);
  const printed = box.output.lines.join("\n");
  assert.notEqual(code, "still running", `still running 150 s after its start:\n${printed}`);
  assert.deepEqual(leftIn(place.ns), [], `left running at the box's exit:\n${printed}`);
  assert.equal(code, 1, printed);
  assert.match(printed, /PM2 did not start the gateways: the PM2 daemon .* did not answer `pm2 start /);
  assert.match(printed, /end it with `kill -9 \$\(cat .*pm2\.pid\)`/);
  assert.equal(existsSync(path.join(place.runDir, "local-box.pid")), false, "its pid file is left");
});

test("npm stop on a PM2 daemon of its home that does not answer (SIGSTOPped, started by no box) says it still runs and how to end it, and exits 1", {
  timeout: 120_000,
}, async (t) => {
  const place = await boxPlace(t, "stop-stuck");
  await stuckDaemonOfNoBox(t, place.runDir);
  const { status, output } = await place.down();
  assert.equal(status, 1, output);
  assert.match(output, /did not answer `pm2 kill`/);
  assert.match(output, /still runs .* end it with `kill -9 \$\(cat .*pm2\.pid\)`/);
  assert.doesNotMatch(output, /local box stopped/);
});
