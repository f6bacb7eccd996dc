/** The per-client-id hello budget (pure, clock injected). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_HELLO_BUDGET, HelloBudget } from "../src/session/hello-budget.ts";

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const taken = (b: HelloBudget, id: string, n: number) => {
  let ok = 0;
  for (let i = 0; i < n; i++) if (b.take(id)) ok++;
  return ok;
};

describe("HelloBudget", () => {
  it("defaults: a hello and three retries at once, then one every 3 s", () => {
    assert.deepEqual(DEFAULT_HELLO_BUDGET, { burst: 4, refillMs: 3000, maxClients: 100_000 });
  });

  it("lets the burst through, then one per refill period", () => {
    const c = clock();
    const b = new HelloBudget({ burst: 4, refillMs: 3000, maxClients: 10 }, c.now);
    assert.equal(taken(b, "d1", 10_000), 4);
    c.advance(2999);
    assert.equal(b.take("d1"), false);
    c.advance(1);
    assert.equal(b.take("d1"), true);
    c.advance(10 * 60_000); // back to the burst, not beyond
    assert.equal(taken(b, "d1", 100), 4);
  });

  it("a firmware-like device (a hello, two retries 10 s apart, a new conversation each minute) is never refused", () => {
    const c = clock();
    const b = new HelloBudget(DEFAULT_HELLO_BUDGET, c.now);
    for (let minute = 0; minute < 600; minute++) {
      assert.equal(b.take("dev"), true);
      c.advance(10_000);
      assert.equal(b.take("dev"), true);
      c.advance(10_000);
      assert.equal(b.take("dev"), true);
      c.advance(40_000);
    }
  });

  it("each client id has its own budget: a flooder does not spend another device's", () => {
    const c = clock();
    const b = new HelloBudget({ burst: 2, refillMs: 1000, maxClients: 10 }, c.now);
    assert.equal(taken(b, "flooder", 50_000), 2);
    assert.equal(taken(b, "victim", 2), 2);
  });

  it("stays within maxClients, forgetting the least recently seen (a forgotten bucket starts full)", () => {
    const c = clock();
    const b = new HelloBudget({ burst: 1, refillMs: 60_000, maxClients: 100 }, c.now);
    assert.equal(b.take("old"), true);
    assert.equal(b.take("old"), false);
    for (let i = 0; i < 10_000; i++) b.take(`id-${i}`);
    assert.equal(b.size, 100);
    assert.equal(b.take("old"), true);
  });

  it("a clock that goes backwards adds no hellos", () => {
    const c = clock();
    const b = new HelloBudget({ burst: 1, refillMs: 1000, maxClients: 10 }, c.now);
    assert.equal(b.take("x"), true);
    c.advance(-5000);
    assert.equal(b.take("x"), false);
  });

  it("refuses nonsensical settings", () => {
    assert.throws(() => new HelloBudget({ burst: 0, refillMs: 1, maxClients: 1 }), RangeError);
    assert.throws(() => new HelloBudget({ burst: 1, refillMs: 0, maxClients: 1 }), RangeError);
    assert.throws(() => new HelloBudget({ burst: 1, refillMs: 1, maxClients: 0 }), RangeError);
  });
});
