/**
 * The per-source-address UDP rate limit (pure, clock injected) and the connection ids that
 * route datagrams to sessions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DeviceSession } from "../src/session/device-session.ts";
import { SessionRegistry } from "../src/session/registry.ts";
import { DEFAULT_SOURCE_LIMIT, SourceLimiter, UdpSourceLimiter } from "../src/session/source-limiter.ts";

function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function allowed(limiter: SourceLimiter, address: string, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (limiter.allow(address)) ok++;
  return ok;
}

describe("SourceLimiter", () => {
  it("defaults to 100 packets/s with bursts of 200 per device socket: six times what a device sends", () => {
    assert.deepEqual(DEFAULT_SOURCE_LIMIT, { ratePerSecond: 100, burst: 200, maxSources: 10_000 });
  });

  it("lets a burst through, then refuses until tokens come back at the rate", () => {
    const c = clock();
    const limiter = new SourceLimiter({ ratePerSecond: 200, burst: 400, maxSources: 100 }, c.now);
    assert.equal(allowed(limiter, "198.51.100.7", 1000), 400);
    c.advance(100); // 20 tokens
    assert.equal(allowed(limiter, "198.51.100.7", 100), 20);
    c.advance(10_000); // refills to the burst, not beyond
    assert.equal(allowed(limiter, "198.51.100.7", 1000), 400);
  });

  it("never limits a device sending 17 packets a second, for an hour", () => {
    const c = clock();
    const limiter = new SourceLimiter(DEFAULT_SOURCE_LIMIT, c.now);
    let refused = 0;
    for (let i = 0; i < 3600 * 17; i++) {
      c.advance(60);
      if (!limiter.allow("203.0.113.9")) refused++;
    }
    assert.equal(refused, 0);
  });

  it("counts each address on its own: one flooder does not limit its neighbours", () => {
    const c = clock();
    const limiter = new SourceLimiter({ ratePerSecond: 10, burst: 10, maxSources: 100 }, c.now);
    assert.equal(allowed(limiter, "10.0.0.1", 50), 10);
    assert.equal(allowed(limiter, "10.0.0.2", 5), 5);
  });

  it("a socket refused by its own bucket takes no token from its address's: its neighbours keep theirs", () => {
    const c = clock();
    const limiter = new UdpSourceLimiter(
      {
        perSocket: { ratePerSecond: 10, burst: 10, maxSources: 100 },
        perAddress: { ratePerSecond: 100, burst: 100, maxSources: 100 },
      },
      c.now,
    );
    let flooder = 0;
    for (let i = 0; i < 10_000; i++) if (limiter.allow("10.0.0.1", 4000)) flooder++;
    assert.equal(flooder, 10);
    let neighbour = 0;
    for (let i = 0; i < 10; i++) if (limiter.allow("10.0.0.1", 4001)) neighbour++;
    assert.equal(neighbour, 10);
  });

  it("stays within maxSources under a flood of spoofed addresses, forgetting the least recently seen", () => {
    const c = clock();
    const limiter = new SourceLimiter({ ratePerSecond: 10, burst: 10, maxSources: 1000 }, c.now);
    assert.equal(allowed(limiter, "192.0.2.1", 20), 10); // the flooder's bucket is empty
    for (let i = 0; i < 100_000; i++) {
      limiter.allow(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      assert.ok(limiter.size <= 1000);
    }
    assert.equal(limiter.size, 1000);
    assert.equal(limiter.evictions, 100_000 + 1 - 1000);
    // Forgotten means a full bucket again: eviction never makes the limiter refuse anyone.
    assert.equal(allowed(limiter, "192.0.2.1", 20), 10);
  });

  it("keeps a busy address while idle ones are evicted (least recently seen goes first)", () => {
    const c = clock();
    const limiter = new SourceLimiter({ ratePerSecond: 1, burst: 5, maxSources: 3 }, c.now);
    allowed(limiter, "a", 5); // a's bucket is empty
    limiter.allow("b");
    limiter.allow("c");
    assert.equal(limiter.allow("a"), false); // a is the most recently seen now
    limiter.allow("d"); // evicts b, not a
    assert.equal(limiter.allow("a"), false);
    assert.equal(limiter.size, 3);
  });

  it("a clock that goes backwards adds no tokens", () => {
    const c = clock(5000);
    const limiter = new SourceLimiter({ ratePerSecond: 100, burst: 2, maxSources: 10 }, c.now);
    assert.equal(allowed(limiter, "x", 5), 2);
    c.advance(-1000);
    assert.equal(allowed(limiter, "x", 5), 0);
  });

  it("refuses nonsensical settings", () => {
    assert.throws(() => new SourceLimiter({ ratePerSecond: 0, burst: 1, maxSources: 1 }), RangeError);
    assert.throws(() => new SourceLimiter({ ratePerSecond: 1, burst: 0, maxSources: 1 }), RangeError);
    assert.throws(() => new SourceLimiter({ ratePerSecond: 1, burst: 1, maxSources: 0 }), RangeError);
  });
});

describe("connection ids", () => {
  it("are unique and never 0 across 10,000 allocations of live sessions, and spread over 32 bits", () => {
    const registry = new SessionRegistry();
    const ids: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const id = registry.allocateConnectionId();
      ids.push(id);
      registry.add({ client: { raw: `client-${i}` }, connectionId: id } as unknown as DeviceSession);
    }
    assert.equal(new Set(ids).size, 10_000);
    assert.ok(ids.every((id) => Number.isInteger(id) && id > 0 && id <= 0xffffffff));
    assert.equal(registry.connectionIds(), 10_000);
    // Unpredictable: not a counter, and each of the 32 bits is set in about half the ids
    // (a sequential or small-range allocator fails this by a wide margin).
    const sorted = [...ids].sort((a, b) => a - b);
    assert.notDeepEqual(ids, sorted);
    for (let bit = 0; bit < 32; bit++) {
      const set = ids.filter((id) => (id >>> bit) & 1).length;
      assert.ok(set > 4500 && set < 5500, `bit ${bit} set in ${set} of 10,000 ids`);
    }
  });
});
