/**
 * The gateway core alone, assembled as app.ts assembles it but with no broker and no
 * sockets: what it publishes goes to the test's callback, datagrams it sends go nowhere.
 * For tests that drive `handleBrokerMessage` / `handleDatagram` directly (fuzzing, heap
 * bounds, peer coordination), with the caller's real Opus pool.
 */
import { after, before } from "node:test";
import type { AgentFactory } from "../../src/agent/agent-bridge.ts";
import { OpusPool } from "../../src/audio/opus-pool.ts";
import { createLogger } from "../../src/ops/log.ts";
import { GatewayMetrics } from "../../src/ops/metrics.ts";
import { newBootId } from "../../src/protocol/session-id.ts";
import { Gateway, type GatewayOptions } from "../../src/session/gateway.ts";

/** An agent that takes everything and says nothing. */
export const nullAgent: AgentFactory = () => ({
  pushAudio: () => {},
  onDeviceEvent: () => {},
  close: async () => {},
});

/** The smallest hello the gateway accepts (no audio_params: its defaults). */
export const MINIMAL_HELLO = Buffer.from(JSON.stringify({ type: "hello", version: 3, transport: "udp" }));

export type CoreOptions = Partial<Omit<GatewayOptions, "pool" | "metrics" | "log" | "ports">> & {
  readonly pool: OpusPool;
  /** Every publish of the core (replies to devices, peer messages), in order. */
  readonly publish?: (topic: string, payload: string, retain?: boolean) => void;
};

export interface Core {
  readonly gateway: Gateway;
  readonly metrics: GatewayMetrics;
}

/** Instance 1 of a fresh boot, silent, the null agent and long timeouts unless told otherwise. */
export function startCore(options: CoreOptions): Core {
  const { pool, publish = () => {}, ...rest } = options;
  const metrics = new GatewayMetrics(1);
  const gateway = new Gateway({
    me: { instanceId: 1, bootId: newBootId() },
    publicHost: "127.0.0.1",
    udpPort: 8881,
    idleTimeoutMs: 600_000,
    maxSessionMs: 600_000,
    agentFactory: nullAgent,
    ...rest,
    pool,
    metrics,
    log: createLogger("silent", 1),
    ports: { publish, sendUdp: () => {} },
  });
  return { gateway, metrics };
}

/** The device a publish is addressed to, when it is a reply on the device's own topic. */
export function replyTarget(topic: string): string | undefined {
  const prefix = "devices/p2p/";
  return topic.startsWith(prefix) ? topic.slice(prefix.length) : undefined;
}

/** A peer instance's presence, as its gateway publishes it (retained, and its will "gone"). */
export function announcePeer(
  gateway: Gateway,
  peer: { instanceId: number; bootId: string },
  state: string,
  udpPort = 8882,
): void {
  gateway.handleBrokerMessage(
    `gateway/presence/${peer.instanceId}`,
    Buffer.from(JSON.stringify({ bootId: peer.bootId, state, udpPort })),
  );
}

/** One publish of a core. */
export interface Published {
  readonly topic: string;
  readonly payload: string;
  readonly retain?: boolean;
}

/**
 * For a describe whose tests each start from a new core: one Opus pool for them all, and
 * `fresh(options)`, which drains the previous core and starts another whose publishes land
 * in `published` (emptied for each). Registers its own before and after hooks.
 */
export function freshCores(): {
  fresh(options?: Omit<CoreOptions, "pool" | "publish">): Promise<Core>;
  readonly published: Published[];
} {
  let pool: OpusPool | undefined;
  let core: Core | undefined;
  const published: Published[] = [];
  const retire = async () => {
    await core?.gateway.drain();
    core?.metrics.stop();
    core = undefined;
  };
  before(async () => {
    pool = await OpusPool.start({ size: 1, complexity: 5, bitrate: 24000 });
  });
  after(async () => {
    await retire();
    await pool?.shutdown();
  });
  return {
    published,
    async fresh(options = {}) {
      await retire();
      published.length = 0;
      if (!pool) throw new Error("freshCores: fresh() before the describe's before hook ran");
      core = startCore({
        ...options,
        pool,
        publish: (topic, payload, retain) => published.push({ topic, payload, retain }),
      });
      return core;
    },
  };
}
