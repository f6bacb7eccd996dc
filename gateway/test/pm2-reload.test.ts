/**
 * Graceful drain under real PM2 (issue 3): `pm2 reload` of all four instances, one by
 * one, while 200 devices are in session. Each instance, on SIGINT, stops taking hellos,
 * says goodbye to its devices and exits; they re-hello at once and land on the others.
 * No device may be without a session for longer than that one re-hello.
 *
 * Load: 200 devices in realtime sessions, each sending one 60 ms frame every 200 ms and
 * hearing it back (the echo agent): ~1,000 frames/s each way over the four instances.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Fleet, type Fleet as FleetT, fmt, percentiles } from "./support/fleet.ts";
import { type Pm2Box, startPm2Box } from "./support/pm2-box.ts";

const DEVICES = 200;
const FRAME_INTERVAL_MS = 200;
/**
 * One hello round trip (device -> broker -> gateway -> broker -> device) takes a few ms
 * idle and ~100-300 ms here while 50 devices re-hello at once and the replacing process
 * boots on the same two cores. 1.5 s is a generous bound for one round trip, far below
 * a retry (the device waits 10 s before it tries again) and the firmware's 120 s.
 */
const ONE_REHELLO_MS = 1500;

describe("pm2 reload of 4 instances under 200 devices", { timeout: 110_000 }, () => {
  let box: Pm2Box;
  let fleet: FleetT;

  before(async () => {
    box = await startPm2Box("reload");
    fleet = await Fleet.start(box.broker.url, DEVICES);
    fleet.startAudio(FRAME_INTERVAL_MS);
  });
  after(async () => {
    await fleet?.close();
    await box?.stop();
  });

  it("restarts every instance, one at a time; each device is without service for one re-hello at most", async () => {
    await waitForAudio(fleet, 3, 15_000);
    const before = await box.list();
    const boots = box.ports.map((p) => box.current(p.instanceId)?.bootId);
    const spreadBefore = fleet.spread(4);
    const startedAt = performance.now();
    // PM2 reloads two apps at a time unless told otherwise: one by one, as the issue asks.
    await box.pm2(["reload", "all", "--parallel", "1"]);
    const reloadMs = performance.now() - startedAt;
    await box.waitForPresence(
      () =>
        box.ports.every(
          (p, i) =>
            box.current(p.instanceId)?.state === "up" && box.current(p.instanceId)?.bootId !== boots[i],
        ),
      20_000,
      "every instance up with a new boot",
    );
    await fleet.allInSession(15_000);
    await waitForAudio(fleet, 3, 15_000);

    // Every instance restarted: new pid, one more restart, a new boot id.
    const afterList = await box.list();
    for (const p of before) {
      const now = afterList.find((q) => q.name === p.name);
      assert.ok(now, p.name);
      assert.equal(now.status, "online", p.name);
      assert.notEqual(now.pid, p.pid, `${p.name} has a new pid`);
      assert.equal(now.restarts, p.restarts + 1, `${p.name} restarted once`);
    }
    // One by one: never two instances out of service (draining or gone) at the same time.
    const down = new Set<number>();
    let maxDown = 0;
    for (const e of box.timeline.filter((e) => e.at >= startedAt)) {
      if (e.state === "up") down.delete(e.instanceId);
      else down.add(e.instanceId);
      maxDown = Math.max(maxDown, down.size);
    }
    const order = box.timeline
      .filter((e) => e.at >= startedAt && e.state === "draining")
      .map((e) => e.instanceId);
    assert.deepEqual(order, [1, 2, 3, 4], "each instance drained once, in order");
    assert.equal(maxDown, 1, "at most one instance out of service at a time");

    // Devices: moved by goodbyes only, each move one hello, nobody left behind.
    const outages = fleet.members.flatMap((m) => m.outages);
    const audioGaps = fleet.members.flatMap((m) => m.audioGaps);
    const moves = fleet.members.map((m) => m.outages.length);
    const reasons = new Map<string, number>();
    for (const m of fleet.members)
      for (const s of m.sessions) if (s.goodbye) reasons.set(s.goodbye, (reasons.get(s.goodbye) ?? 0) + 1);
    console.log(
      `# reload of 4 took ${(reloadMs / 1000).toFixed(1)} s; sessions per instance before ${spreadBefore.join("/")}, after ${fleet.spread(4).join("/")}`,
    );
    console.log(
      `# goodbyes ${JSON.stringify(Object.fromEntries(reasons))}; moves per device: max ${Math.max(...moves)}, total ${outages.length}`,
    );
    console.log(`# session lost -> next hello reply: ${fmt(percentiles(outages))}`);
    console.log(`# last frame heard -> first frame heard again: ${fmt(percentiles(audioGaps))}`);
    assert.ok(outages.length >= DEVICES, "every device moved at least once (each instance drained)");
    assert.deepEqual([...reasons.keys()], ["drain"], "sessions ended by the drains only");
    assert.equal(
      fleet.members.reduce((n, m) => n + m.helloFailures, 0),
      0,
      "no re-hello needed a retry",
    );
    const worst = Math.max(...outages);
    assert.ok(worst <= ONE_REHELLO_MS, `longest outage ${worst.toFixed(0)} ms > ${ONE_REHELLO_MS} ms`);
    for (const m of fleet.members) {
      assert.deepEqual(m.device.stats.errors, {}, `${m.device.clientId}: device-side errors`);
      assert.equal(m.device.stats.sequenceGaps, 0, `${m.device.clientId}: downstream sequence gaps`);
    }
  });
});

/** Resolves once every device heard at least `frames` frames back in its current session. */
async function waitForAudio(fleet: FleetT, frames: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const behind = () => fleet.members.filter((m) => (fleet.current(m)?.received ?? 0) < frames).length;
  while (behind() > 0) {
    if (Date.now() > deadline) throw new Error(`${behind()} devices heard fewer than ${frames} frames`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
