/**
 * The steps of an instance's drain (ops/drain.ts) against a broker that is down, on an
 * injected clock: the instance is draining before it asks the broker anything, and a broker
 * that answers nothing holds each step at most BROKER_DRAIN_WAIT_MS.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import {
  BROKER_DRAIN_WAIT_MS,
  type DrainingBroker,
  type DrainingGateway,
  type DrainSteps,
  drainInstance,
} from "../src/ops/drain.ts";
import { ManualTimers } from "./support/manual-timers.ts";

/** A broker that is down: what it is asked goes in the log, and is never confirmed. */
class SilentBroker extends EventEmitter implements DrainingBroker {
  readonly #log: string[];
  constructor(log: string[]) {
    super();
    this.#log = log;
  }
  #ask(what: string): Promise<void> {
    this.#log.push(what);
    this.emit("asked", what);
    return new Promise<void>(() => {});
  }
  unsubscribe(topic: string): Promise<void> {
    return this.#ask(`unsubscribe ${topic}`);
  }
  publish(topic: string, payload: string): void {
    this.#log.push(`publish ${topic} ${payload}`);
  }
  publishAndFlush(topic: string, payload: string): Promise<void> {
    return this.#ask(`publishAndFlush ${topic} ${payload}`);
  }
  end(): Promise<void> {
    return this.#ask("end");
  }
}

function drainOf(log: string[]): { steps: DrainSteps; broker: SilentBroker; timers: ManualTimers } {
  const gateway: DrainingGateway = {
    markDraining: () => log.push("draining"),
    drain: async () => {
      log.push("goodbyes");
    },
    presencePayload: (state) => state,
  };
  const broker = new SilentBroker(log);
  const timers = new ManualTimers();
  const schedule = (fn: () => void, ms: number) => {
    const t = timers.start(ms, fn);
    return () => t.cancel();
  };
  const steps = { gateway, broker, ingest: "ingest", presenceTopic: "presence", udpPort: 1, schedule };
  return { steps, broker, timers };
}

describe("an instance's drain", () => {
  it("marks the instance draining before it asks the broker anything", () => {
    const log: string[] = [];
    void drainInstance(drainOf(log).steps);
    assert.deepEqual(log, ["draining", "unsubscribe ingest"]);
  });

  it("with the broker down, gives each broker step up after BROKER_DRAIN_WAIT_MS and still says goodbye", async () => {
    const log: string[] = [];
    const { steps, broker, timers } = drainOf(log);
    const asked = (what: string) =>
      log.includes(what)
        ? Promise.resolve()
        : new Promise<void>((resolve) => broker.on("asked", (w: string) => w === what && resolve()));
    const drained = drainInstance(steps);
    for (const step of ["unsubscribe ingest", "publishAndFlush presence gone", "end"]) {
      await asked(step);
      timers.advance(BROKER_DRAIN_WAIT_MS);
    }
    await drained;
    assert.deepEqual(log, [
      "draining",
      "unsubscribe ingest",
      "publish presence draining",
      "goodbyes",
      "publishAndFlush presence gone",
      "end",
    ]);
  });
});
