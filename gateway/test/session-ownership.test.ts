/**
 * Session ownership through faults (issue 12), in-process: real broker, real gateways,
 * real UDP and libopus. The claim rules and the survivor pick are also checked as pure
 * functions. The same faults under real PM2 are in faults.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SimulatedDevice } from "../../tools/sim/device.ts";
import { firmwareHello } from "../../tools/sim/firmware-hello.ts";
import type { RunningGateway } from "../src/app.ts";
import { ClaimBook } from "../src/session/claim-book.ts";
import { balanceTarget, type Claim, newerClaim, survivorFor } from "../src/session/owner-routing.ts";
import { assertRealTimeEcho, talkAndTimeEcho } from "./support/realtime-echo.ts";
import { eventually, type Stack, sessionIdsOf, startStack } from "./support/stack.ts";

const claim = (instanceId: number, helloAt: number, bootId = "boot1"): Claim => ({
  instanceId,
  bootId,
  sessionId: `${instanceId}-${bootId}-${helloAt.toString(16).padStart(16, "0")}`,
  helloAt,
});

describe("claims and survivors (pure)", () => {
  it("the later hello wins whichever claim is seen first", () => {
    const a = claim(1, 1000);
    const b = claim(2, 1005);
    assert.equal(newerClaim(b, a), true);
    assert.equal(newerClaim(a, b), false);
    const one = new ClaimBook();
    one.record("c", a);
    one.record("c", b);
    const two = new ClaimBook();
    two.record("c", b);
    two.record("c", a);
    assert.deepEqual(one.get("c"), b);
    assert.deepEqual(two.get("c"), b);
  });

  it("a dead boot's claims are taken once; a restarted instance's older boots too", () => {
    const book = new ClaimBook();
    book.record("a", claim(1, 1, "old"));
    book.record("b", claim(1, 2, "new"));
    book.record("c", claim(2, 3, "old"));
    assert.deepEqual(
      book.takeOrphans(1, { liveBoot: "new" }).map((o) => o.clientId),
      ["a"],
    );
    assert.deepEqual(book.takeOrphans(1, { liveBoot: "new" }), []);
    assert.deepEqual(
      book.takeOrphans(2, { deadBoot: "old" }).map((o) => o.clientId),
      ["c"],
    );
    assert.equal(book.size, 1);
  });

  it("holds at most its bound, forgetting the oldest claim", () => {
    const book = new ClaimBook(3);
    for (let i = 0; i < 5; i++) book.record(`d${i}`, claim(1, i));
    assert.equal(book.size, 3);
    assert.equal(book.get("d0"), undefined);
    assert.ok(book.get("d4"));
  });

  it("passes a hello on only at `slack` sessions above the least loaded peer, ties by client id", () => {
    const loads = new Map([
      [1, 10],
      [2, 8],
      [3, 8],
      [4, 9],
    ]);
    const load = (id: number) => loads.get(id) ?? 0;
    assert.equal(balanceTarget(1, load, [1, 2, 3, 4], 3, "a"), undefined);
    const picked = new Set(
      Array.from({ length: 50 }, (_, i) => balanceTarget(1, load, [1, 2, 3, 4], 2, `device-${i}`)),
    );
    assert.deepEqual([...picked].sort(), [2, 3]);
    assert.equal(balanceTarget(1, load, [1, 2, 3, 4], 0, "a"), undefined);
    assert.equal(balanceTarget(1, load, [1], 1, "a"), undefined);
  });

  it("picks one survivor per device, the same on every instance, spread over all", () => {
    const counts = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const id = `GID_test@@@02_00_00_00_${i}_01@@@x`;
      const s = survivorFor(id, [3, 1, 2]);
      assert.equal(s, survivorFor(id, [1, 2, 3]), "independent of the order peers are known in");
      counts.set(s as number, (counts.get(s as number) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), [1, 2, 3]);
    assert.equal(survivorFor("x", []), undefined);
  });
});

function helloPayload(): Buffer {
  return Buffer.from(JSON.stringify(firmwareHello()));
}

describe("session ownership across instances (in-process, real broker)", () => {
  let stack: Stack;
  let gateways: RunningGateway[];

  before(async () => {
    stack = await startStack();
    // No balancing: the race below puts each hello on a chosen instance.
    gateways = await stack.startGateways(3, { overrides: { WORKER_COUNT: "1", HELLO_BALANCE_SLACK: "0" } });
  });
  after(async () => {
    await stack?.stop();
  });

  const sessionsOf = (clientId: string) => sessionIdsOf(stack, clientId);

  it("two hellos of one device on two instances: the later wins everywhere, 100 of 100 trials", async () => {
    const [g1, g2] = gateways as [RunningGateway, RunningGateway];
    const devices: SimulatedDevice[] = await Promise.all(Array.from({ length: 100 }, () => stack.device()));
    const expected = new Map<string, string>();
    await Promise.all(
      devices.map(async (d, i) => {
        const replies = [
          d.waitForMessage((m) => m.type === "hello" && String(m.session_id).startsWith("1-")),
          d.waitForMessage((m) => m.type === "hello" && String(m.session_id).startsWith("2-")),
        ];
        const t = Date.now();
        const topic = `ingest/${d.clientId}`;
        // The earlier hello reached instance 1, the later one instance 2; half the trials
        // handle them in that order, half the other way round (a stalled instance 1).
        if (i % 2 === 0) {
          g1.gateway.handleBrokerMessage(topic, helloPayload(), t);
          g2.gateway.handleBrokerMessage(topic, helloPayload(), t + 5);
        } else {
          g2.gateway.handleBrokerMessage(topic, helloPayload(), t + 5);
          g1.gateway.handleBrokerMessage(topic, helloPayload(), t);
        }
        const [, later] = await Promise.all(replies);
        expected.set(d.clientId, String(later?.session_id));
      }),
    );
    await eventually(
      () => devices.every((d) => sessionsOf(d.clientId).length === 1),
      5000,
      "exactly one live session per device",
    );
    for (const d of devices) assert.deepEqual(sessionsOf(d.clientId), [expected.get(d.clientId)]);
    // The earlier session was told goodbye (the device may hold it: its reply can come last).
    const toldGoodbye = (d: SimulatedDevice) => {
      const early = d.messages.find((m) => m.type === "hello" && String(m.session_id).startsWith("1-"));
      return d.messages.some((m) => m.type === "goodbye" && m.session_id === early?.session_id);
    };
    await eventually(() => devices.every(toldGoodbye), 5000, "a goodbye for every earlier session");
    await Promise.all(devices.map((d) => d.close()));
  });

  it("a hello handled seconds after it arrived is not answered, and is counted", async () => {
    const g = gateways[0] as RunningGateway;
    const d = await stack.device();
    const before = g.metrics.dropCount("mqtt_hello_too_late");
    g.gateway.handleBrokerMessage(`ingest/${d.clientId}`, helloPayload(), Date.now() - 6000);
    assert.equal(g.metrics.dropCount("mqtt_hello_too_late"), before + 1);
    assert.deepEqual(sessionsOf(d.clientId), []);
    await d.close();
  });

  it("a dead instance's devices are told goodbye by exactly one survivor, without sending anything", async () => {
    const devices = await Promise.all(Array.from({ length: 40 }, () => stack.device()));
    const replies = await Promise.all(devices.map((d) => d.hello()));
    const victim = gateways[2] as RunningGateway;
    const orphans = devices.filter((_, i) => replies[i]?.sessionId.startsWith("3-"));
    const others = devices.filter((d) => !orphans.includes(d));
    assert.ok(orphans.length > 0 && others.length > 0);
    const goodbyes = new Map<SimulatedDevice, number>();
    for (const d of devices)
      d.on("message", (m: { type?: string }) => {
        if (m.type === "goodbye") goodbyes.set(d, (goodbyes.get(d) ?? 0) + 1);
      });
    const told = Promise.all(orphans.map((d) => d.waitForMessage((m) => m.type === "goodbye", 2000)));
    const killedAt = performance.now();
    await stack.killGateway(victim);
    await told;
    const ms = performance.now() - killedAt;
    // Each survivor counts the goodbyes it sent: together exactly one per orphan.
    const survivors = stack.gateways;
    const sentTotal = async () => {
      let n = 0;
      for (const g of survivors) for (const v of (await g.metrics.orphanGoodbyes.get()).values) n += v.value;
      return n;
    };
    let sent = await sentTotal();
    const deadline = Date.now() + 2000;
    while (sent < orphans.length && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
      sent = await sentTotal();
    }
    console.log(`# kill -> goodbye for all ${orphans.length} orphans: ${ms.toFixed(0)} ms`);
    assert.equal(sent, orphans.length, "one goodbye per orphan, from one survivor");
    for (const d of orphans) assert.ok((goodbyes.get(d) ?? 0) >= 1, `${d.clientId}: told goodbye`);
    for (const d of others) assert.equal(goodbyes.get(d), undefined, `${d.clientId}: no goodbye`);
    await Promise.all(devices.map((d) => d.close()));
  });
});

describe("upstream frames of 20, 40 and 60 ms (in-process)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    await stack.startGateway({ WORKER_COUNT: "1" });
  });
  after(async () => {
    await stack?.stop();
  });

  for (const frameMs of [20, 40, 60]) {
    it(`${frameMs} ms frames: echoed back at real-time pace, none refused`, async () => {
      // Seed 0 of the speech clip (index % 8): voiced from its first second.
      const d = await stack.device({ frameDurationMs: frameMs, index: 800 + frameMs * 8 });
      await d.hello();
      d.listen("auto");
      const pace = await talkAndTimeEcho(d);
      console.log(
        `# ${frameMs} ms frames: ${pace.audioMs} ms of echo played over ${pace.spanMs.toFixed(0)} ms`,
      );
      assertRealTimeEcho(d, pace);
      assert.equal(stack.gateways[0]?.metrics.dropCount("udp_bad_opus"), 0);
      await d.close();
    });
  }
});

describe("hello balancing (in-process, real broker)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    await stack.startGateways(4, { overrides: { WORKER_COUNT: "1" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("devices arriving one by one spread within 10% of even, whatever the hash says", async () => {
    const devices: SimulatedDevice[] = [];
    for (let i = 0; i < 200; i++) {
      const d = await stack.device();
      await d.hello();
      devices.push(d);
    }
    const counts = stack.gateways.map((g) => g.gateway.sessions.size);
    console.log(`# 200 devices one by one: sessions per instance ${counts.join("/")}`);
    for (const n of counts) assert.ok(Math.abs(n - 50) <= 5, `sessions per instance ${counts.join("/")}`);
    await Promise.all(devices.map((d) => d.close()));
  });
});
