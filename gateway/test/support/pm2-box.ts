/**
 * The four gateway instances as production runs them: the built bundle (scripts/build.ts,
 * the same code as `npm run build`, into a private folder so a running local box or another
 * test keeps its dist/), its ecosystem file, real PM2 with its own PM2_HOME under .run/,
 * and an env file naming a local broker on a free port. The ecosystem's UDP 8881-8884 and
 * health 9001-9004 are fixed: they are checked free first.
 *
 * A presence watcher (a gateway-credentialed MQTT client on `gateway/presence/+`) records
 * each instance's up/draining/gone with its boot id, so tests await instances by event.
 */
import { createSocket } from "node:dgram";
import { EventEmitter } from "node:events";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { DEFAULT_ECOSYSTEM, instancePorts } from "../../../deploy/ecosystem.ts";
import { buildBundle } from "../../../scripts/build.ts";
import { type Pm2Process, pm2, pm2Kill, pm2List, ROOT } from "../../../tools/pm2.ts";
import { type BrokerProcess, startBroker } from "../../../tools/sim/broker-process.ts";
import { processAlive } from "../../../tools/sim/process-alive.ts";

export interface Presence {
  readonly at: number;
  readonly instanceId: number;
  readonly state: "up" | "draining" | "gone";
  readonly bootId: string;
}

export interface Pm2Box {
  /** The broker now (restartBroker replaces it, on the same port). */
  readonly broker: BrokerProcess;
  readonly ports: ReturnType<typeof instancePorts>;
  /** Every presence message seen, in order; `presence.on("change", p)` too. */
  readonly timeline: Presence[];
  readonly presence: EventEmitter;
  /** Each instance's latest presence. */
  current(instanceId: number): Presence | undefined;
  /** Resolves once `predicate` holds for the latest presences (checked on each change). */
  waitForPresence(predicate: () => boolean, timeoutMs: number, what: string): Promise<void>;
  pm2(args: string[]): Promise<string>;
  /**
   * `kill -9` of the broker, then a new one on the same port after `downMs` (as systemd
   * restarts EMQX). Resolves once the new broker listens, with when that was
   * (performance.now()).
   */
  restartBroker(downMs: number): Promise<number>;
  list(): Promise<Pm2Process[]>;
  stop(): Promise<void>;
}

const INSTANCES = DEFAULT_ECOSYSTEM.instances;

export async function startPm2Box(name: string): Promise<Pm2Box> {
  const ports = instancePorts(DEFAULT_ECOSYSTEM);
  for (const p of ports) {
    await assertFree("udp", p.udpPort);
    await assertFree("tcp", p.healthPort);
  }
  const dir = path.join(ROOT, ".run", `test-${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const home = path.join(dir, "pm2");
  await buildBundle(path.join(dir, "dist"));
  let broker = await startBroker();
  const envFile = path.join(dir, "gateway.env");
  writeFileSync(
    envFile,
    [
      "PUBLIC_HOST=127.0.0.1",
      "UDP_BIND=127.0.0.1",
      `MQTT_URL=${broker.url}`,
      "MQTT_USERNAME=gateway",
      `MQTT_PASSWORD=${broker.gatewayPassword}`,
      "LOG_LEVEL=warn",
      // Every simulated device sends from 127.0.0.1: to the per-address UDP limit they are
      // 200 devices behind one NAT address, far above what one address is allowed.
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const options = { home, env: { GATEWAY_ENV_FILE: envFile } };

  const timeline: Presence[] = [];
  const latest = new Map<number, Presence>();
  const presence = new EventEmitter();
  presence.setMaxListeners(50);
  const watcher: MqttClient = mqtt.connect(broker.url, {
    clientId: `test-presence-watcher-${process.pid}`,
    username: "gateway",
    password: broker.gatewayPassword,
    // Back after a broker restart, like the gateways (and subscribed again: clean session).
    reconnectPeriod: 300,
  });
  let connectedBefore = false;
  watcher.on("connect", () => {
    if (connectedBefore) watcher.subscribe("gateway/presence/+");
    connectedBefore = true;
  });
  watcher.on("message", (topic, payload) => {
    const p = JSON.parse(payload.toString()) as { state: Presence["state"]; bootId: string };
    const entry: Presence = {
      at: performance.now(),
      instanceId: Number(topic.split("/").pop()),
      state: p.state,
      bootId: p.bootId,
    };
    timeline.push(entry);
    latest.set(entry.instanceId, entry);
    presence.emit("change", entry);
  });
  await watcher.subscribeAsync("gateway/presence/+");

  const box: Pm2Box = {
    get broker() {
      return broker;
    },
    ports,
    timeline,
    presence,
    current: (id) => latest.get(id),
    waitForPresence(predicate, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate()) return;
          clearTimeout(timer);
          presence.off("change", check);
          resolve();
        };
        const timer = setTimeout(() => {
          presence.off("change", check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        presence.on("change", check);
        check();
      });
    },
    pm2: (args) => pm2(args, options),
    list: () => pm2List(options),
    async restartBroker(downMs) {
      const old = broker;
      await new Promise<void>((resolve) => {
        old.process.once("exit", () => resolve());
        old.process.kill("SIGKILL");
      });
      await new Promise((r) => setTimeout(r, downMs));
      broker = await startBroker({ port: old.port, gatewayPassword: old.gatewayPassword });
      return performance.now();
    },
    async stop() {
      const pids = (await pm2List(options).catch(() => [])).map((p) => p.pid);
      await pm2Kill(options);
      for (const pid of pids) if (pid > 0 && processAlive(pid)) process.kill(pid, "SIGKILL");
      await watcher.endAsync(true);
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // The gateway apps only: the ecosystem's other apps are not this test's subject.
    const only = ports.map((p) => `gateway-${p.instanceId}`).join(",");
    await pm2(["start", path.join(dir, "dist/ecosystem.config.cjs"), "--only", only], options);
    await box.waitForPresence(
      () => ports.every((p) => box.current(p.instanceId)?.state === "up"),
      30_000,
      `${INSTANCES} instances up`,
    );
    for (const p of ports) {
      const r = await fetch(`http://127.0.0.1:${p.healthPort}/readyz`);
      if (r.status !== 200) throw new Error(`instance ${p.instanceId} not ready after pm2 start`);
    }
  } catch (err) {
    await box.stop();
    throw err;
  }
  return box;
}

/** Fails clearly when a fixed port of the ecosystem is taken (a local box running?). */
async function assertFree(kind: "udp" | "tcp", port: number): Promise<void> {
  const taken = (err: Error) =>
    new Error(
      `${kind.toUpperCase()} port ${port} (fixed by deploy/ecosystem.ts) is in use: ${err.message}. ` +
        "Is a local box running (npm stop) or another PM2 test?",
    );
  if (kind === "udp") {
    const s = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      s.once("error", (err) => reject(taken(err)));
      s.bind(port, "0.0.0.0", () => resolve());
    }).finally(() => {
      try {
        s.close();
      } catch {
        // never bound
      }
    });
    return;
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(taken(err)));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}
