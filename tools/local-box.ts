/**
 * The local box: `npm start` brings up, on this machine and with no cloud account,
 *   the local broker (broker/, port 1883) -> 4 gateway instances under PM2 (the very
 *   ecosystem file cloud-init installs, from dist/) -> simulated devices that talk and
 *   hear themselves back (echo agent),
 * and prints a one-line summary every second. Ctrl-C (or `npm stop` from another
 * terminal) tears everything down.
 *
 *   npm start                       8 devices, until Ctrl-C
 *   npm start -- --devices 50 --duration 60 --mode realtime
 *   npm start -- --devices 0        broker + gateways only (point a real device here)
 */

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_ECOSYSTEM, instancePorts } from "../deploy/ecosystem.ts";
import { buildBundle } from "../scripts/build.ts";
import { fetchJson, waitReady } from "./load/health-client.ts";
import { pm2, pm2Kill, ROOT } from "./pm2.ts";
import { startBroker } from "./sim/broker-process.ts";
import { loopbackAddress, SimulatedDevice } from "./sim/device.ts";

const RUN = path.join(ROOT, ".run");
const PID_FILE = path.join(RUN, "local-box.pid");

async function up(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: "string", default: "8" },
      duration: { type: "string", default: "0" },
      mode: { type: "string", default: "auto" },
      "broker-port": { type: "string", default: "1883" },
      "public-host": { type: "string", default: "127.0.0.1" },
    },
  });
  const deviceCount = Number(values.devices);
  const durationS = Number(values.duration);
  const mode = values.mode as "auto" | "realtime" | "manual";
  if (!Number.isInteger(deviceCount) || deviceCount < 0) throw new Error("--devices must be a whole number");
  if (!["auto", "realtime", "manual"].includes(mode))
    throw new Error("--mode must be auto, realtime or manual");
  if (existsSync(PID_FILE)) {
    const pid = Number(readFileSync(PID_FILE, "utf8"));
    if (isAlive(pid)) throw new Error(`a local box is already running (pid ${pid}); run npm stop first`);
  }
  mkdirSync(RUN, { recursive: true });
  writeFileSync(PID_FILE, String(process.pid));

  console.log("building the gateway bundle (dist/)...");
  await buildBundle();
  const password = randomBytes(18).toString("base64url");
  const broker = await startBroker({ port: Number(values["broker-port"]), gatewayPassword: password });
  console.log(`broker listening on ${broker.url}`);
  // Host settings and secrets for the instances, as /etc/voice-gateway/gateway.env on the droplet.
  const envFile = path.join(RUN, "gateway.env");
  writeFileSync(
    envFile,
    [
      `PUBLIC_HOST=${values["public-host"]}`,
      `MQTT_URL=${broker.url}`,
      "MQTT_USERNAME=gateway",
      `MQTT_PASSWORD=${password}`,
      // For the device verifier (PM2 app device-auth), which refuses to start without a
      // key. The local broker checks devices itself, so nothing here calls the verifier.
      `MQTT_SIGNING_KEY=${randomBytes(32).toString("hex")}`,
      "LOG_LEVEL=info",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  await pm2Kill();
  await pm2(["start", path.join(ROOT, "dist/ecosystem.config.cjs")], { env: { GATEWAY_ENV_FILE: envFile } });
  const ports = instancePorts(DEFAULT_ECOSYSTEM);
  await Promise.all(ports.map((p) => waitReady(`http://127.0.0.1:${p.healthPort}`)));
  console.log(
    `${ports.length} gateway instances ready under PM2 (PM2_HOME=.run/pm2); health: ${ports.map((p) => `http://127.0.0.1:${p.healthPort}/health`).join(" ")}`,
  );

  const devices: SimulatedDevice[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(summary);
    clearInterval(conversation);
    console.log("\nstopping: devices, gateways (drain), broker...");
    await Promise.all(devices.map((d) => d.close()));
    await pm2Kill();
    await broker.stop();
    rmSync(PID_FILE, { force: true });
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  for (let i = 0; i < deviceCount; i++) {
    const d = new SimulatedDevice({
      brokerUrl: broker.url,
      index: i + 1,
      udpBindAddress: loopbackAddress(i + 1),
    });
    devices.push(d);
    await d.connect();
    await d.hello();
    d.listen(mode);
  }
  // Each device speaks a sentence, then waits to hear it back, then speaks again.
  const talkOnce = (d: SimulatedDevice) => {
    if (!d.session || (d.speaking && mode !== "realtime")) return;
    d.talk(1200 + Math.floor(Math.random() * 1200));
  };
  devices.forEach(talkOnce);
  const conversation = setInterval(() => devices.forEach(talkOnce), 4000);
  const goodbyes = new Map<string, number>();
  for (const d of devices) {
    d.on("server_goodbye", (reason: string) => {
      goodbyes.set(reason, (goodbyes.get(reason) ?? 0) + 1);
      // The gateway closed our session (drain, restart): re-hello, as firmware does on
      // its next interaction.
      if (!stopping)
        void d
          .hello()
          .then(() => d.listen(mode))
          .catch(() => {});
    });
  }
  const started = Date.now();
  let lastRecv = 0;
  const summary = setInterval(async () => {
    const healths = await Promise.all(
      ports.map((p) => fetchJson(`http://127.0.0.1:${p.healthPort}/health`, 800)),
    );
    const perInstance = healths.map((h) => (h ? String(h.sessions) : "down")).join("/");
    const recv = devices.reduce((n, d) => n + d.stats.framesReceived, 0);
    const sent = devices.reduce((n, d) => n + d.stats.framesSent, 0);
    const errors = devices.reduce(
      (n, d) => n + Object.values(d.stats.errors).reduce((a, b) => a + (b ?? 0), 0),
      0,
    );
    const live = devices.filter((d) => d.session).length;
    const t = Math.round((Date.now() - started) / 1000);
    process.stdout.write(
      `[${t}s] devices ${live}/${devices.length} in session | sessions per instance ${perInstance} | frames up ${sent} down ${recv} (+${recv - lastRecv}/s) | device errors ${errors}${goodbyes.size ? ` | goodbyes ${JSON.stringify(Object.fromEntries(goodbyes))}` : ""}\n`,
    );
    lastRecv = recv;
    if (durationS > 0 && t >= durationS) void stop(errors > 0 ? 1 : 0);
  }, 1000);
}

async function down(): Promise<void> {
  if (existsSync(PID_FILE)) {
    const pid = Number(readFileSync(PID_FILE, "utf8"));
    if (isAlive(pid)) {
      process.kill(pid, "SIGTERM");
      console.log(`asked the local box (pid ${pid}) to stop`);
      return;
    }
    rmSync(PID_FILE, { force: true });
  }
  await pm2Kill();
  console.log("local box stopped (PM2 daemon in .run/pm2 killed)");
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const [command, ...rest] = process.argv.slice(2);
const run = command === "down" ? down() : up(rest);
run.catch(async (err: Error) => {
  console.error(`local box: ${err.message}`);
  await pm2Kill();
  rmSync(PID_FILE, { force: true });
  process.exit(1);
});
