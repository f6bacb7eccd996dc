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
 * One re-hello: the device sends hello the moment it sees goodbye, so an outage is one
 * hello round trip (device -> broker -> gateway -> broker -> device), provided no hello
 * needed a retry (checked: a retry comes only after the device's 10 s hello timeout).
 * Measured here: p50 40-70 ms, worst 75-175 ms while 50 devices re-hello at once and the
 * replacing process boots on the same two cores. 1 s is ~6x that worst, and 10x below
 * anything that took a second hello.
 */
const ONE_REHELLO_MS = 1000;

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
    await fleet.allHeardAudio(3, 15_000);
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
    // Every boot is new, so every session now is one opened since the reload: each device
    // is on a live instance (none holds on to a session that silently went away) and hears
    // its frames there.
    assertOnLiveInstances(box, fleet);
    await fleet.allHeardAudio(3, 15_000);

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
    const refused = fleet.members.reduce(
      (n, m) => n + (m.device.stats.errors.audio_before_tts_start ?? 0),
      0,
    );
    console.log(`# first frames of a turn refused by devices (audio before tts start): ${refused}`);
    assert.ok(outages.length >= DEVICES, "every device moved at least once (each instance drained)");
    assert.deepEqual([...reasons.keys()], ["drain"], "sessions ended by the drains only");
    assert.equal(
      fleet.members.reduce((n, m) => n + m.helloFailures, 0),
      0,
      "no re-hello needed a retry",
    );
    const worst = Math.max(...outages);
    assert.ok(worst <= ONE_REHELLO_MS, `longest outage ${worst.toFixed(0)} ms > ${ONE_REHELLO_MS} ms`);
    // Within each session, no downstream frame lost on the way.
    for (const m of fleet.members) assert.equal(m.device.stats.sequenceGaps, 0, m.device.clientId);
  });

  it("SIGTERM drains too: goodbye to every device, exit 0, PM2 starts it again", async () => {
    const target = fleet.spread(4).indexOf(Math.max(...fleet.spread(4))) + 1;
    const name = `gateway-${target}`;
    const proc = (await box.list()).find((p) => p.name === name);
    assert.ok(proc && proc.pid > 0);
    const boot = box.current(target)?.bootId;
    const moving = fleet.members.filter((m) => fleet.current(m)?.instanceId === target);
    const outagesBefore = new Map(fleet.members.map((m) => [m, m.outages.length]));
    process.kill(proc.pid, "SIGTERM");
    await box.waitForPresence(
      () => box.current(target)?.state === "up" && box.current(target)?.bootId !== boot,
      20_000,
      `${name} drained and started again`,
    );
    await fleet.allInSession(10_000);
    assertOnLiveInstances(box, fleet);
    const states = box.timeline
      .filter((e) => e.instanceId === target && e.bootId === boot)
      .map((e) => e.state);
    assert.deepEqual(states.slice(-2), ["draining", "gone"], "drained, then said gone itself");
    const raw = JSON.parse((await box.pm2(["jlist"])).replace(/^[^[]*/, "")) as {
      name: string;
      pm2_env: { exit_code?: number; restart_time: number };
    }[];
    const now = raw.find((p) => p.name === name);
    assert.equal(now?.pm2_env.exit_code, 0, "exit code after the drain");
    assert.equal(now?.pm2_env.restart_time, proc.restarts + 1);
    const outages = moving.map((m) => {
      assert.equal(m.outages.length, (outagesBefore.get(m) ?? 0) + 1, "one move");
      assert.equal(m.sessions.at(-2)?.goodbye, "drain");
      return m.outages.at(-1) as number;
    });
    console.log(`# SIGTERM of ${name}: ${moving.length} devices moved; outage ${fmt(percentiles(outages))}`);
    assert.ok(Math.max(...outages) <= ONE_REHELLO_MS);
    assert.equal(
      fleet.members.reduce((n, m) => n + m.helloFailures, 0),
      0,
    );
  });
});

function assertOnLiveInstances(box: Pm2Box, fleet: FleetT): void {
  const live = new Set(box.ports.map((p) => `${p.instanceId}-${box.current(p.instanceId)?.bootId}`));
  for (const m of fleet.members)
    assert.ok(
      live.has(fleet.current(m)?.owner ?? ""),
      `${m.device.clientId} in a session of a live instance`,
    );
}
