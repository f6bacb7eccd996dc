/**
 * A child's exit, awaited by a test that then reads what the child printed. Node emits a
 * child's `exit` as soon as the process is reaped, and its piped stdout and stderr may still
 * hold output not yet read: a line written just before the end (a log line, then a
 * self-kill) was missing from the output so read (a CI run failed so). `close` comes once
 * the pipes are drained and shut too.
 */
import type { ChildProcess } from "node:child_process";

export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Resolves once `child` has exited and its output is read: at its `close`, or `graceMs`
 * after its `exit` where something it started still holds its pipes open (that process then
 * is the test's to find; the wait for the output must not hang on it). Call it as the child
 * is spawned, before either event can have come.
 */
export function endOf(child: ChildProcess, graceMs = 5_000): Promise<ChildEnd> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    child.once("exit", (code, signal) => {
      timer = setTimeout(() => resolve({ code, signal }), graceMs);
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}
