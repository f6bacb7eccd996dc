/**
 * The fault scenarios of issue 12, run against a real PM2 box (pm2-box.ts) with a fleet of
 * simulated devices in realtime sessions (fleet.ts). Each returns figures, not verdicts:
 * faults.test.ts asserts the targets on them, `npm run chaos` (tools/chaos.ts) prints them.
 *
 * Clocks: performance.now() of this process. "Audio again" is the first downstream frame a
 * device hears in a session opened after the fault.
 */
import type { SimulatedDevice } from "../../../tools/sim/device.ts";
import { SimulatedDevice as Device } from "../../../tools/sim/device.ts";
import { firmwareHello } from "../../../tools/sim/firmware-hello.ts";
import type { HealthBody } from "../../src/ops/health-body.ts";
import { Fleet, type Member } from "./fleet.ts";
import type { Pm2Box } from "./pm2-box.ts";
import { eventually } from "./stack.ts";

export interface FaultFigures {
  readonly scenario: string;
  /** Devices whose session the fault ended (or, for a broker restart, every device). */
  readonly affected: number;
  /** Per affected device: ms from `recoveryFrom` to audio again. */
  readonly recovery: number[];
  readonly recoveryFrom: string;
  /** Hellos of devices arriving during the fault not answered within the firmware's 10 s. */
  readonly unansweredHellos: number;
  /** Sessions of devices that the fault should not have touched and that ended anyway. */
  readonly othersEnded: number;
  /** Downstream frames lost or refused by those devices (sequence gaps, device errors). */
  readonly othersFramesLost: number;
  /** Gateway sessions beyond the devices' own live ones, `staleAfterMs` after recovery. */
  readonly stale: number;
  readonly staleAfterMs: number;
  readonly notes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sessions held by the live instances now (a stopped one does not answer: undefined). */
export async function liveSessions(box: Pm2Box): Promise<number | undefined> {
  try {
    const counts = await Promise.all(
      box.ports.map(async (p) => {
        const r = await fetch(`http://127.0.0.1:${p.healthPort}/health`, {
          signal: AbortSignal.timeout(1500),
        });
        return ((await r.json()) as HealthBody).sessions;
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  } catch {
    return undefined;
  }
}

/** Waits (up to `timeoutMs`) for the gateways to hold exactly `expected` sessions; returns the excess. */
async function settleSessions(box: Pm2Box, expected: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = await liveSessions(box);
    if (n === expected || performance.now() > deadline) return (n ?? Number.NaN) - expected;
    await sleep(200);
  }
}

function lossOf(m: Member): number {
  const errors = Object.values(m.device.stats.errors).reduce((a, b) => a + (b ?? 0), 0);
  return errors + m.device.stats.sequenceGaps;
}

/** A session opened after `t` in which the device heard audio. */
function servedAfter(fleet: Fleet, m: Member, t: number): boolean {
  const s = fleet.current(m);
  return s !== undefined && s.openedAt > t && s.firstAudioAt !== undefined;
}

async function pidOf(box: Pm2Box, instanceId: number): Promise<number> {
  const p = (await box.list()).find((x) => x.name === `gateway-${instanceId}`);
  if (!p || p.pid <= 0) throw new Error(`gateway-${instanceId} is not running`);
  return p.pid;
}

interface Split {
  readonly victims: Member[];
  readonly others: Member[];
  readonly othersBefore: Map<Member, { sessions: number; loss: number }>;
}

function split(fleet: Fleet, instanceId: number | undefined): Split {
  const victims = fleet.members.filter(
    (m) => instanceId === undefined || fleet.current(m)?.instanceId === instanceId,
  );
  const others = fleet.members.filter((m) => !victims.includes(m));
  return {
    victims,
    others,
    othersBefore: new Map(others.map((m) => [m, { sessions: m.sessions.length, loss: lossOf(m) }])),
  };
}

function othersHarm(s: Split): { ended: number; lost: number } {
  let ended = 0;
  let lost = 0;
  for (const m of s.others) {
    const b = s.othersBefore.get(m) as { sessions: number; loss: number };
    if (m.sessions.length !== b.sessions || !m.device.session) ended++;
    lost += lossOf(m) - b.loss;
  }
  return { ended, lost };
}

async function waitForRestart(
  box: Pm2Box,
  instanceId: number,
  deadBoot: string | undefined,
  timeoutMs: number,
) {
  await box.waitForPresence(
    () => box.current(instanceId)?.state === "up" && box.current(instanceId)?.bootId !== deadBoot,
    timeoutMs,
    `gateway-${instanceId} back with a new boot`,
  );
}

/** `kill -9` of one instance; its devices only stream UDP and send no MQTT message. */
export async function killInstance(box: Pm2Box, fleet: Fleet, victim: number): Promise<FaultFigures> {
  const pid = await pidOf(box, victim);
  const deadBoot = box.current(victim)?.bootId;
  const s = split(fleet, victim);
  const t0 = performance.now();
  process.kill(pid, "SIGKILL");
  await box.waitForPresence(
    () => box.current(victim)?.state !== "up" || box.current(victim)?.bootId !== deadBoot,
    5000,
    "the will",
  );
  const willMs = performance.now() - t0;
  await eventually(
    () => s.victims.every((m) => servedAfter(fleet, m, t0)),
    20_000,
    "every orphan audible again",
  );
  const recovery = s.victims.map((m) => (fleet.current(m)?.firstAudioAt as number) - t0);
  await waitForRestart(box, victim, deadBoot, 20_000);
  await fleet.allInSession(10_000);
  const harm = othersHarm(s);
  const staleAfterMs = 5000;
  const stale = await settleSessions(box, fleet.members.length, staleAfterMs);
  return {
    scenario: `kill -9 of instance ${victim}`,
    affected: s.victims.length,
    recovery,
    recoveryFrom: "the kill",
    unansweredHellos: fleet.members.reduce((n, m) => n + m.helloFailures, 0),
    othersEnded: harm.ended,
    othersFramesLost: harm.lost,
    stale,
    staleAfterMs,
    notes: [`will seen after ${willMs.toFixed(0)} ms; PM2 restarted the instance`],
  };
}

/**
 * SIGSTOP of one instance for `stopMs`, then SIGCONT; `newcomers` devices arrive, evenly
 * spread, during the stop (their hellos may land on the stopped instance).
 */
export async function stopInstance(
  box: Pm2Box,
  fleet: Fleet,
  victim: number,
  stopMs: number,
  newcomers: number,
): Promise<FaultFigures> {
  const pid = await pidOf(box, victim);
  const deadBoot = box.current(victim)?.bootId;
  const s = split(fleet, victim);
  const t0 = performance.now();
  process.kill(pid, "SIGSTOP");
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    process.kill(pid, "SIGCONT");
  };
  const resumeTimer = setTimeout(resume, stopMs);
  const arriving = Fleet.start(box.broker.url, newcomers, {
    staggerMs: Math.floor(stopMs / Math.max(1, newcomers)),
    indexBase: 20_000,
  });
  arriving.catch(() => undefined); // awaited below; this only keeps an early failure handled
  try {
    await box.waitForPresence(
      () => box.current(victim)?.state === "gone",
      stopMs + 10_000,
      "the broker to give up on the stopped instance",
    );
    const goneMs = performance.now() - t0;
    await eventually(
      () => s.victims.every((m) => servedAfter(fleet, m, t0)),
      stopMs + 20_000,
      "every device of the stopped instance audible again",
    );
    const recovery = s.victims.map((m) => (fleet.current(m)?.firstAudioAt as number) - t0);
    await sleep(Math.max(0, t0 + stopMs - performance.now()));
    resume();
    const late = await arriving;
    const unanswered = late.members.reduce((n, m) => n + m.helloFailures, 0);
    await waitForRestart(box, victim, deadBoot, 20_000);
    await fleet.allInSession(10_000);
    const harm = othersHarm(s);
    const staleAfterMs = 5000;
    const stale = await settleSessions(box, fleet.members.length + late.members.length, staleAfterMs);
    await late.close();
    // Their sessions close on the broker's disconnect events: let those land before the
    // next fault (a broker killed first would never send them).
    await settleSessions(box, fleet.members.length, 5000);
    return {
      scenario: `SIGSTOP of instance ${victim} for ${stopMs / 1000} s`,
      affected: s.victims.length,
      recovery,
      recoveryFrom: "the SIGSTOP",
      unansweredHellos: unanswered,
      othersEnded: harm.ended,
      othersFramesLost: harm.lost,
      stale,
      staleAfterMs,
      notes: [
        `broker declared it gone after ${goneMs.toFixed(0)} ms (keepalive); on SIGCONT its watchdog exited and PM2 restarted it`,
        `${newcomers} devices arrived during the stop; ${unanswered} hellos went unanswered for 10 s and were retried`,
      ],
    };
  } finally {
    clearTimeout(resumeTimer);
    resume();
    await arriving.then((f) => f.close()).catch(() => undefined);
  }
}

/** `kill -9` of the broker, back after `downMs`. The fleet must reconnect (FleetOptions.reconnect). */
export async function restartBroker(box: Pm2Box, fleet: Fleet, downMs: number): Promise<FaultFigures> {
  const s = split(fleet, undefined);
  const t0 = performance.now();
  const back = await box.restartBroker(downMs);
  await eventually(
    () => fleet.members.every((m) => servedAfter(fleet, m, back)),
    30_000,
    "every device audible again",
  );
  const recovery = s.victims.map((m) => (fleet.current(m)?.firstAudioAt as number) - back);
  const spread = fleet.spread(box.ports.length);
  await box.waitForPresence(
    () => box.ports.every((p) => box.current(p.instanceId)?.state === "up"),
    10_000,
    "every instance's presence again",
  );
  const staleAfterMs = 10_000;
  await sleep(Math.max(0, back + staleAfterMs - performance.now()));
  const excess = (await liveSessions(box)) ?? Number.NaN;
  return {
    scenario: `broker kill -9, back after ${downMs / 1000} s`,
    affected: s.victims.length,
    recovery,
    recoveryFrom: "the broker's return",
    unansweredHellos: 0,
    othersEnded: 0,
    othersFramesLost: 0,
    stale: excess - fleet.members.length,
    staleAfterMs,
    notes: [`sessions per instance after: ${spread.join("/")}; down ${(back - t0).toFixed(0)} ms in all`],
  };
}

const HELLO = firmwareHello();

/** `trials` devices each send two hellos back to back (a firmware retry under load). */
export async function doubleHellos(
  box: Pm2Box,
  brokerUrl: string,
  trials: number,
): Promise<{ exactlyOne: number; figures: string }> {
  const base = (await liveSessions(box)) ?? 0;
  const devices: SimulatedDevice[] = Array.from(
    { length: trials },
    (_, i) => new Device({ brokerUrl, index: 30_000 + i, decodeEvery: 1e9 }),
  );
  try {
    await Promise.all(devices.map((d) => d.connect()));
    let twoReplies = 0;
    await Promise.all(
      devices.map(async (d) => {
        let replies = 0;
        const both = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`${d.clientId}: ${replies} of 2 hello replies`)),
            10_000,
          );
          d.on("message", (m: { type?: string }) => {
            if (m.type === "hello" && ++replies === 2) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        d.send(HELLO);
        d.send(HELLO);
        await both;
        twoReplies++;
      }),
    );
    const excess = await settleSessions(box, base + trials, 5000);
    // Each device holds one session: any extra or missing one shows in the total.
    const exactlyOne = excess === 0 ? trials : trials - Math.abs(excess);
    return {
      exactlyOne,
      figures: `${twoReplies}/${trials} got both replies; sessions ${excess >= 0 ? "+" : ""}${excess} vs one per device`,
    };
  } finally {
    await Promise.all(devices.map((d) => d.close()));
  }
}

/** `count` devices arriving one every `staggerMs`: every session per instance after (theirs and any before). */
export async function staggeredSpread(box: Pm2Box, count: number, staggerMs: number): Promise<number[]> {
  const before = (await liveSessions(box)) ?? 0;
  const fleet = await Fleet.start(box.broker.url, count, { staggerMs, indexBase: 40_000 });
  try {
    return await Promise.all(
      box.ports.map(async (p) => {
        const r = await fetch(`http://127.0.0.1:${p.healthPort}/health`, {
          signal: AbortSignal.timeout(2000),
        });
        return ((await r.json()) as HealthBody).sessions;
      }),
    );
  } finally {
    await fleet.close();
    // Their sessions close on the broker's disconnect events: wait, so the next scenario
    // counts from a settled figure.
    await settleSessions(box, before, 5000);
  }
}

export function describeFigures(f: FaultFigures): string {
  const r = [...f.recovery].sort((a, b) => a - b);
  const at = (q: number) => (r[Math.min(r.length - 1, Math.floor(q * r.length))] ?? Number.NaN).toFixed(0);
  return [
    `${f.scenario}: ${f.affected} devices affected`,
    `  audio again after ${f.recoveryFrom}: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`,
    `  hellos unanswered within 10 s: ${f.unansweredHellos}`,
    `  sessions of unaffected devices ended: ${f.othersEnded}; their frames lost: ${f.othersFramesLost}`,
    `  stale sessions ${f.staleAfterMs / 1000} s after: ${f.stale}`,
    ...f.notes.map((n) => `  ${n}`),
  ].join("\n");
}
