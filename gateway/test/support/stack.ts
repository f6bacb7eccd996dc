/**
 * Test harness: the real local broker (a child process on a free loopback port) and
 * gateway instances started in-process on free ports, plus simulated devices. Everything
 * started here is stopped by `stop()`.
 */

import mqtt, { type MqttClient } from "mqtt";
import {
  type BrokerProcess,
  type BrokerStartOptions,
  startBroker,
} from "../../../tools/sim/broker-process.ts";
import { type DeviceOptions, SimulatedDevice } from "../../../tools/sim/device.ts";
import type { AgentFactory } from "../../src/agent/agent-bridge.ts";
import { type RunningGateway, startGateway } from "../../src/app.ts";
import { type GatewayConfig, parseConfig } from "../../src/config.ts";
import { createLogger } from "../../src/ops/log.ts";

export interface Stack {
  readonly broker: BrokerProcess;
  readonly gateways: RunningGateway[];
  readonly devices: SimulatedDevice[];
  startGateway(overrides?: Record<string, string>, agentFactory?: AgentFactory): Promise<RunningGateway>;
  /**
   * Starts `count` gateways with INSTANCE_ID 1..count (each with the agent factory made for
   * its instance id, if given) and resolves once every one has seen every other's presence.
   */
  startGateways(count: number, options?: MultiGatewayOptions): Promise<RunningGateway[]>;
  /** Crash-stops one gateway (`kill()`: no goodbyes, the broker publishes its will). */
  killGateway(gateway: RunningGateway): Promise<void>;
  device(options?: Partial<DeviceOptions>): Promise<SimulatedDevice>;
  stop(): Promise<void>;
}

export interface MultiGatewayOptions {
  readonly overrides?: Record<string, string>;
  readonly agentFactory?: (instanceId: number) => AgentFactory;
}

let nextIndex = 1;

export function testConfig(
  brokerUrl: string,
  password: string,
  overrides: Record<string, string> = {},
): GatewayConfig {
  return parseConfig({
    INSTANCE_ID: "1",
    UDP_PORT: "0",
    UDP_BIND: "127.0.0.1",
    PUBLIC_HOST: "127.0.0.1",
    HEALTH_PORT: "0",
    WORKER_COUNT: "2",
    // The first session's codecs on the main thread, every later one's in a worker: tests
    // with several devices run both paths.
    OPUS_INLINE_STREAMS: "1",
    MQTT_URL: brokerUrl,
    MQTT_PASSWORD: password,
    ...overrides,
  });
}

export async function startStack(brokerOptions: BrokerStartOptions = {}): Promise<Stack> {
  const broker = await startBroker(brokerOptions);
  const gateways: RunningGateway[] = [];
  const devices: SimulatedDevice[] = [];
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent", 0);
  const stack: Stack = {
    broker,
    gateways,
    devices,
    async startGateway(overrides = {}, agentFactory) {
      const config = testConfig(broker.url, broker.gatewayPassword, overrides);
      const g = await startGateway(config, agentFactory ? { log, agentFactory } : { log });
      gateways.push(g);
      return g;
    },
    async startGateways(count, options = {}) {
      const started = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          stack.startGateway(
            { ...options.overrides, INSTANCE_ID: String(i + 1) },
            options.agentFactory?.(i + 1),
          ),
        ),
      );
      await eventually(
        () => started.every((g) => g.gateway.peers.size === count - 1),
        10_000,
        `${count} gateways seeing each other's presence`,
      );
      return started;
    },
    async killGateway(gateway) {
      const i = gateways.indexOf(gateway);
      if (i >= 0) gateways.splice(i, 1);
      await gateway.kill();
    },
    async device(options = {}) {
      const d = new SimulatedDevice({ brokerUrl: broker.url, index: nextIndex++, ...options });
      devices.push(d);
      await d.connect();
      return d;
    },
    async stop() {
      await Promise.all(devices.map((d) => d.close()));
      await Promise.all(gateways.map((g) => g.kill()));
      await broker.stop();
    },
  };
  return stack;
}

/** The ids of the sessions the stack's gateways hold for `clientId` (more than one is a defect). */
export function sessionIdsOf(stack: Stack, clientId: string): string[] {
  return stack.gateways.flatMap((g) => {
    const s = g.gateway.sessions.byClient(clientId);
    return s ? [s.sessionId] : [];
  });
}

/**
 * An MQTT client as a gateway (user `gateway`) subscribed to `filter`, for a test to hear
 * what a peer instance hears; no reconnect. The caller ends it.
 */
export async function watchAsGateway(
  broker: Pick<BrokerProcess, "url" | "gatewayPassword">,
  filter: string,
): Promise<MqttClient> {
  const watcher = mqtt.connect(broker.url, {
    username: "gateway",
    password: broker.gatewayPassword,
    reconnectPeriod: 0,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      watcher.once("connect", () => watcher.subscribe(filter, (err) => (err ? reject(err) : resolve())));
      watcher.once("error", reject);
    });
  } catch (err) {
    watcher.end(true);
    throw err;
  }
  return watcher;
}

/** Resolves when `predicate` holds, checking after each event-loop turn that `emitter`-free code can use. */
export async function eventually(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
