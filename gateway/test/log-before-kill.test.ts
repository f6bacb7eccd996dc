/**
 * The line a process writes just before it kills itself (ops/log.ts, synchronousLogger): it
 * must be out before the kill, with the fields and redaction of the process's log. Each case
 * runs in a child Node that SIGKILLs itself with libuv's thread pool busy (a pbkdf2 on each
 * of its 4 threads), where pino's default, asynchronous destination would hold a line back.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runModuleInChild } from "./support/child-module.ts";

const LOG = JSON.stringify(new URL("../src/ops/log.ts", import.meta.url).href);

/** Logs `lines` (statements using `log`), then SIGKILLs itself; resolves with the JSON lines printed. */
async function linesBeforeKill(lines: string): Promise<Record<string, unknown>[]> {
  const { signal, stdout, stderr } = await runModuleInChild(`import { pbkdf2 } from "node:crypto";
import { createLogger, synchronousLogger } from ${LOG};
const log = createLogger("info", 3);
for (let i = 0; i < 4; i++) pbkdf2("p", "s", 5_000_000, 32, "sha256", () => {});
${lines}
process.kill(process.pid, "SIGKILL");`);
  assert.equal(signal, "SIGKILL", stderr);
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("the last line before a self-kill", { timeout: 60_000 }, () => {
  it("is out before the kill, with the log's fields, even with the thread pool busy", async () => {
    const lines = await linesBeforeKill(`synchronousLogger(log).fatal({ workersInside: 1 }, "killing");`);
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.msg, "killing");
    assert.equal(line?.level, 60);
    assert.equal(line?.instance, 3);
    assert.equal(typeof line?.pid, "number");
    assert.equal(line?.workersInside, 1);
  });

  it("redacts as the log does", async () => {
    const [line] = await linesBeforeKill(`synchronousLogger(log).fatal({ password: "hunter2" }, "killing");`);
    assert.equal(line?.password, "[redacted]");
  });

  it("keeps the fields of a child log", async () => {
    const [line] = await linesBeforeKill(
      `synchronousLogger(log.child({ app: "device-auth" })).fatal("killing");`,
    );
    assert.equal(line?.app, "device-auth");
    assert.equal(line?.instance, 3);
  });

  it("writes the log's lines queued behind one in the thread pool first", async () => {
    // The first line goes to the pool at once (and may be lost there); the two after it wait
    // in pino's queue, and are written before the last line.
    const lines = await linesBeforeKill(
      `log.info("first"); log.info("second"); log.info("third"); synchronousLogger(log).fatal("killing");`,
    );
    const msgs = lines.map((l) => l.msg).filter((m) => m !== "first");
    assert.deepEqual(msgs, ["second", "third", "killing"]);
  });

  it("follows the log's level: a fatal line is written at any level but silent", async () => {
    const lines = await linesBeforeKill(
      `const quiet = createLogger("silent", 3); synchronousLogger(quiet).fatal("killing");`,
    );
    assert.deepEqual(lines, []);
  });
});
