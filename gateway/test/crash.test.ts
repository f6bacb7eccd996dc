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

    // Quiesce, then compare what each live process counted with what the devices sent and heard.
    fleet.stopAudio();
    const live = box.ports.map((p) => ({
      ...p,
      owner: `${p.instanceId}-${box.current(p.instanceId)?.bootId}`,
    }));
    const counted = await eventuallyMetrics(live, fleet, 10_000);

    console.log(
      `# killed instance ${VICTIM} (${orphans.length} sessions): will seen after ${goneMs.toFixed(0)} ms; all its devices served again ${recoveredMs.toFixed(0)} ms after the kill`,
    );
    console.log(`# orphan's next message -> new session: ${fmt(percentiles(recovery))}`);
    console.log(`# per live instance, frames up/down counted = sent/heard by devices: ${counted}`);
    for (const m of orphans) {
      assert.equal(m.sessions.at(-2)?.goodbye, "session_unknown", "a stale-session goodbye");
      assert.notEqual(fleet.current(m)?.owner, `${VICTIM}-${deadBoot}`);
      assert.ok((m.sessions.at(-1)?.received ?? 0) > 0, "hears its frames again");
    }
    assert.ok(Math.max(...recovery) < 1000, "goodbye and new session within 1 s of the next message");
    others.forEach((m, i) => {
      assert.equal(m.sessions.length, 1, `${m.device.clientId} kept its session`);
      assert.equal(fleet.current(m)?.sessionId, othersSessions[i]);
      assert.deepEqual(m.device.stats.errors, {});
      assert.equal(m.device.stats.sequenceGaps, 0, "no downstream frame lost");
      const s = m.sessions[0];
      assert.ok(s && s.received > 0);
    });
    assert.equal(
      fleet.members.reduce((n, m) => n + m.helloFailures, 0),
      0,
    );
  });
});

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
 * Every live process must have decoded exactly the frames its sessions were sent and
 * encoded exactly the frames its devices heard: no frame lost on any live instance.
 */
async function eventuallyMetrics(
  live: { instanceId: number; healthPort: number; owner: string }[],
  fleet: FleetT,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const totals = fleet.totals();
    const rows = await Promise.all(
      live.map(async (p) => {
        const text = await (await fetch(`http://127.0.0.1:${p.healthPort}/metrics`)).text();
        const value = (name: string) =>
          Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
        const t = totals.get(p.owner) ?? { sent: 0, received: 0 };
        return {
          id: p.instanceId,
          up: value("gateway_frames_up_total"),
          down: value("gateway_frames_down_total"),
          ...t,
        };
      }),
    );
    const summary = rows.map((r) => `#${r.id} ${r.up}/${r.down} = ${r.sent}/${r.received}`).join(", ");
    if (rows.every((r) => r.up === r.sent && r.down === r.received)) return summary;
    if (Date.now() > deadline)
      assert.fail(`frames counted by the instances differ from the devices': ${summary}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
