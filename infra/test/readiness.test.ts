/**
 * The readiness probe the reserved IP waits for, against real TCP sockets on loopback and
 * an injected clock (no real waiting).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { after, describe, test } from "node:test";
import { type Clock, tcpReadiness } from "../readiness.ts";

/** A port nothing listens on (taken, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Time moves only when the probe sleeps; `onSleep` runs at each sleep. */
function fakeClock(onSleep: (n: number) => Promise<void> | void = () => {}): Clock & { sleeps: number } {
  let t = 0;
  const clock = {
    sleeps: 0,
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
      clock.sleeps++;
      await onSleep(clock.sleeps);
    },
  };
  return clock;
}

describe("tcpReadiness", () => {
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  test("waits while nothing listens, resolves once the listener opens", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const clock = fakeClock(async (n) => {
      if (n !== 3) return;
      const s = createServer((c) => c.destroy());
      servers.push(s);
      await new Promise<void>((r) => s.listen(port, "127.0.0.1", r));
    });
    await tcpReadiness({
      ports: [port],
      timeoutMs: 60_000,
      intervalMs: 1_000,
      clock,
      log: (l) => lines.push(l),
    })("127.0.0.1");
    assert.equal(clock.sleeps, 3, "ready at the attempt after the listener opened");
    assert.match(lines.at(-1) ?? "", new RegExp(`127\\.0\\.0\\.1: port ${port} accepts devices after 3 s`));
  });

  test("any of the device ports will do", async () => {
    const closed = await freePort();
    const s = createServer((c) => c.destroy());
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const open = (s.address() as { port: number }).port;
    const clock = fakeClock();
    await tcpReadiness({ ports: [closed, open], timeoutMs: 1_000, clock })("127.0.0.1");
    assert.equal(clock.sleeps, 0);
  });

  test("gives up after the timeout, naming the host and how to look at its first boot", async () => {
    const port = await freePort();
    const clock = fakeClock();
    await assert.rejects(
      tcpReadiness({ ports: [port], timeoutMs: 20 * 60_000, intervalMs: 10_000, clock })("127.0.0.1"),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            `gateway 127\\.0\\.0\\.1 did not open its device listener \\(TCP ${port}\\) within 20 min`,
          ),
        );
        assert.match(err.message, /the reserved IP stays where it is/);
        assert.match(err.message, /cloud-init status --long/);
        return true;
      },
    );
    assert.equal(clock.sleeps, 120);
  });
});
