/**
 * Crash under real PM2 (issue 3): `kill -9` of one instance while 200 devices are in
 * session. The broker publishes the dead instance's will ("gone"); its devices, on their
 * next message, get a stale-session goodbye from a live instance and re-hello there. The
 * other instances' devices must not lose a single frame either way. PM2 restarts the
 * killed instance with a new boot.
 *
 * Load: as in pm2-reload.test.ts, 200 realtime sessions, one 60 ms frame every 200 ms
 * each, every frame echoed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Fleet, type Fleet as FleetT, fmt, type Member, percentiles } from "./support/fleet.ts";
import { type Pm2Box, startPm2Box } from "./support/pm2-box.ts";

const DEVICES = 200;
const FRAME_INTERVAL_MS = 200;
const VICTIM = 2;

describe("kill -9 of one of 4 instances under 200 devices", { timeout: 110_000 }, () => {
  let box: Pm2Box;
  let fleet: FleetT;

  before(async () => {
    box = await startPm2Box("crash");
    fleet = await Fleet.start(box.broker.url, DEVICES);
    fleet.startAudio(FRAME_INTERVAL_MS);
  });
  after(async () => {
    await fleet?.close();
    await box?.stop();
  });

  it("serves the dead instance's devices again on their next message; the others lose no frame", async () => {
    await waitForAudio(fleet, 3, 15_000);
    const victim = (await box.list()).find((p) => p.name === `gateway-${VICTIM}`);
    assert.ok(victim && victim.pid > 0);
    const deadBoot = box.current(VICTIM)?.bootId;
    const orphans = fleet.members.filter((m) => fleet.current(m)?.instanceId === VICTIM);
    const others = fleet.members.filter((m) => !orphans.includes(m));
    const othersSessions = others.map((m) => fleet.current(m)?.sessionId);
    assert.ok(orphans.length > 0 && others.length > 0);

    // Device-side losses before the kill (the session start races) are not the crash's.
    const before = new Map(others.map((m) => [m, snapshot(m)]));
    const killedAt = performance.now();
    process.kill(victim.pid, "SIGKILL");
    await box.waitForPresence(
      () => box.current(VICTIM)?.state === "gone" && box.current(VICTIM)?.bootId === deadBoot,
      5000,
      "the will of the killed instance",
    );
    const goneMs = performance.now() - killedAt;

    // Each orphan's next message (here: all at once) is for a session nobody holds.
    const recovery: number[] = [];
    await Promise.all(
      orphans.map(async (m) => {
        const stale = m.device.session?.sessionId as string;
        const sentAt = performance.now();
        m.device.send({ session_id: stale, type: "listen", state: "start", mode: "realtime" });
        await servedAgain(fleet, m, stale, 5000);
        recovery.push(performance.now() - sentAt);
      }),
    );
    const recoveredMs = performance.now() - killedAt;
    await fleet.allInSession(5000);
    await waitForAudio(fleet, 3, 15_000);
    // PM2 brings the killed instance back, with a new boot.
    await box.waitForPresence(
      () => box.current(VICTIM)?.state === "up" && box.current(VICTIM)?.bootId !== deadBoot,
      20_000,
      "PM2 to restart the killed instance",
    );
    const restarted = (await box.list()).find((p) => p.name === `gateway-${VICTIM}`);
    assert.ok(restarted && restarted.pid !== victim.pid && restarted.restarts === victim.restarts + 1);

    // Quiesce, then compare what each live process counted with what the devices sent.
    fleet.stopAudio();
    const live = box.ports.map((p) => ({
      ...p,
      owner: `${p.instanceId}-${box.current(p.instanceId)?.bootId}`,
    }));
    const counted = await upstreamCounted(live, fleet, 10_000);
    console.log(
      `# killed instance ${VICTIM} (${orphans.length} sessions): will seen after ${goneMs.toFixed(0)} ms; all its devices served again ${recoveredMs.toFixed(0)} ms after the kill`,
    );
    console.log(`# orphan's next message -> new session: ${fmt(percentiles(recovery))}`);
    console.log(`# per live instance: ${counted.summary}`);
    console.log(`# device-side, whole run: orphans ${errors(orphans)}, others ${errors(others)}`);

    // The dead instance's devices: a stale goodbye, then a session elsewhere, audio again.
    for (const m of orphans) {
      assert.equal(m.sessions.at(-2)?.goodbye, "session_unknown", "a stale-session goodbye");
      assert.ok(
        live.some((p) => p.owner === fleet.current(m)?.owner),
        `${m.device.clientId} in a session of a live instance`,
      );
      assert.ok((m.sessions.at(-1)?.received ?? 0) > 0, "hears its frames again");
    }
    assert.ok(Math.max(...recovery) < 1000, "goodbye and new session within 1 s of the next message");
    // The others' devices lose nothing: upstream, every frame was decoded (counted above);
    // downstream, no frame was dropped before sending, lost on the way, or refused.
    others.forEach((m, i) => {
      assert.equal(m.sessions.length, 1, `${m.device.clientId} kept its session`);
      assert.equal(fleet.current(m)?.sessionId, othersSessions[i]);
      assert.deepEqual(snapshot(m), before.get(m), `${m.device.clientId}: frames refused or lost on the way`);
    });
    assert.deepEqual(counted.drops, [], "no audio dropped by a live instance");
    assert.equal(
      fleet.members.reduce((n, m) => n + m.helloFailures, 0),
      0,
    );
  });
});

function snapshot(m: Member): string {
  return JSON.stringify({ ...m.device.stats.errors, sequenceGaps: m.device.stats.sequenceGaps });
}

function errors(members: Member[]): string {
  const acc: Record<string, number> = { sequenceGaps: 0 };
  for (const m of members) {
    for (const [k, v] of Object.entries(m.device.stats.errors)) acc[k] = (acc[k] ?? 0) + (v ?? 0);
    acc.sequenceGaps = (acc.sequenceGaps ?? 0) + m.device.stats.sequenceGaps;
  }
  return JSON.stringify(acc);
}

/** Resolves once the device has a new session after a goodbye for `stale`. */
async function servedAgain(fleet: FleetT, m: Member, stale: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = fleet.current(m);
    if (s && s.sessionId !== stale) return;
    if (Date.now() > deadline)
      throw new Error(`${m.device.clientId}: not served again within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function waitForAudio(fleet: FleetT, frames: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const behind = () => fleet.members.filter((m) => (fleet.current(m)?.received ?? 0) < frames).length;
  while (behind() > 0) {
    if (Date.now() > deadline) throw new Error(`${behind()} devices heard fewer than ${frames} frames`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Each live process must have decoded exactly the frames its sessions were sent (waits for
 * the last ones in flight); returns its audio drops (UDP and downstream reasons) too.
 */
async function upstreamCounted(
  live: { instanceId: number; healthPort: number; owner: string }[],
  fleet: FleetT,
  timeoutMs: number,
): Promise<{ summary: string; drops: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const totals = fleet.totals();
    const rows = await Promise.all(
      live.map(async (p) => {
        const text = await (await fetch(`http://127.0.0.1:${p.healthPort}/metrics`)).text();
        const value = (name: string) =>
          Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
        const drops = [
          ...text.matchAll(/^gateway_dropped_total\{reason="((?:udp|down)_\w+)"[^}]*\} (\d+)$/gm),
        ].map((x) => `#${p.instanceId} ${x[1]}=${x[2]}`);
        const t = totals.get(p.owner) ?? { sent: 0, received: 0 };
        return {
          id: p.instanceId,
          up: value("gateway_frames_up_total"),
          down: value("gateway_frames_down_total"),
          drops,
          ...t,
        };
      }),
    );
    const summary = rows
      .map((r) => `#${r.id} decoded ${r.up} of ${r.sent} frames sent, encoded ${r.down}`)
      .join("; ");
    if (rows.every((r) => r.up === r.sent)) return { summary, drops: rows.flatMap((r) => r.drops) };
    if (Date.now() > deadline) assert.fail(`frames lost upstream: ${summary}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
