/**
 * Test harness: the real local broker (a child process on a free loopback port) and
 * gateway instances started in-process on free ports, plus simulated devices. Everything
 * started here is stopped by `stop()`.
 */

import { type BrokerProcess, startBroker } from "../../../tools/sim/broker-process.ts";
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
  device(options?: Partial<DeviceOptions>): Promise<SimulatedDevice>;
  stop(): Promise<void>;
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
    MQTT_URL: brokerUrl,
    MQTT_PASSWORD: password,
    ...overrides,
  });
}

export async function startStack(): Promise<Stack> {
  const broker = await startBroker();
  const gateways: RunningGateway[] = [];
  const devices: SimulatedDevice[] = [];
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent", 0);
  return {
    broker,
    gateways,
    devices,
    async startGateway(overrides = {}, agentFactory) {
      const config = testConfig(broker.url, broker.gatewayPassword, overrides);
      const g = await startGateway(config, agentFactory ? { log, agentFactory } : { log });
      gateways.push(g);
      return g;
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
}

/** Resolves when `predicate` holds, checking after each event-loop turn that `emitter`-free code can use. */
export async function eventually(
  predicate: () => boolean,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
