/**
 * pm2Kill (tools/pm2.ts) on a PM2 home where no daemon runs must start none: PM2's CLI,
 * finding no daemon to talk to, spawns one, then kills it (0.3 to 0.5 s, and a daemon of
 * that home for a moment; `npm stop` did so on every box it stopped). A pm2.pid left by a
 * daemon that is gone, its pid perhaps another process's by now, is no daemon. Where one
 * runs, it is still killed.
 *
 * Real PM2 (the project's, node_modules), each case in a PM2 home of its own; the daemon is
 * looked for in /proc every 10 ms during the call, by its environment (PM2_HOME=<home>) and
 * its title.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { eventually } from "../../gateway/test/support/stack.ts";
import { environ, running } from "../local-box/processes.ts";
import { pm2, pm2Kill } from "../pm2.ts";
import { commandLine } from "./support/local-box.ts";

/** A PM2 home of the test's own, gone after it with any daemon of it. */
function pm2HomeFor(t: { after: (fn: () => void) => void }): string {
  const home = mkdtempSync(path.join(tmpdir(), "test-pm2-kill-"));
  t.after(() => {
    for (const pid of daemonsOf(home)) process.kill(pid, "SIGKILL");
    rmSync(home, { recursive: true, force: true });
  });
  return home;
}

/** The PM2 daemons of `home` running now. */
function daemonsOf(home: string): number[] {
  return readdirSync("/proc")
    .map(Number)
    .filter(
      (pid) =>
        Number.isInteger(pid) &&
        environ(pid).includes(`PM2_HOME=${home}`) &&
        (commandLine(pid) ?? "").includes("God Daemon"),
    );
}

/** pm2Kill on `home`, with every PM2 daemon of that home seen while it ran. */
async function killWatched(home: string): Promise<{ noAnswer: string | undefined; seen: number[] }> {
  const seen = new Set<number>();
  const look = () => {
    for (const pid of daemonsOf(home)) seen.add(pid);
  };
  const timer = setInterval(look, 10);
  try {
    const noAnswer = await pm2Kill({ home });
    look();
    return { noAnswer, seen: [...seen] };
  } finally {
    clearInterval(timer);
  }
}

test("pm2Kill where no PM2 daemon runs starts none, and leaves the home untouched", {
  timeout: 60_000,
}, async (t) => {
  const home = pm2HomeFor(t);
  const { noAnswer, seen } = await killWatched(home);
  assert.equal(noAnswer, undefined);
  assert.deepEqual(seen, [], "a PM2 daemon of the home ran during pm2Kill");
  assert.deepEqual(readdirSync(home), [], "the home holds what a PM2 CLI or daemon wrote");
});

test("pm2Kill takes a pm2.pid whose process is gone, or whose pid is now another process's, for no daemon", {
  timeout: 60_000,
}, async (t) => {
  const home = pm2HomeFor(t);
  const gone = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  // A process of this machine that is no PM2 daemon of the home: this test's.
  for (const pid of [Number(gone.stdout.trim()), process.pid]) {
    writeFileSync(path.join(home, "pm2.pid"), String(pid));
    const { seen } = await killWatched(home);
    assert.deepEqual(seen, [], `a PM2 daemon of the home ran during pm2Kill (pm2.pid: ${pid})`);
    assert.deepEqual(readdirSync(home), ["pm2.pid"], `pm2.pid: ${pid}`);
  }
});

test("pm2Kill where a PM2 daemon runs kills it", { timeout: 60_000 }, async (t) => {
  const home = pm2HomeFor(t);
  await pm2(["ping"], { home });
  const daemon = Number(readFileSync(path.join(home, "pm2.pid"), "utf8"));
  assert.deepEqual(daemonsOf(home), [daemon]);
  assert.equal(await pm2Kill({ home }), undefined);
  // It exits once `pm2 kill` has returned.
  await eventually(() => !running(daemon), 10_000, "the daemon's exit");
  assert.deepEqual(daemonsOf(home), []);
});
