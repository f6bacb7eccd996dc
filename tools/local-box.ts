/**
 * The local box: `npm start` brings up, on this machine and with no cloud account,
 *   the local broker (broker/, port 1883, restarted if it exits, device authentication on)
 *   -> 4 gateway instances under PM2 (the very ecosystem file cloud-init installs, from
 *   dist/) -> a development OTA endpoint (port 8002) -> simulated devices that provision
 *   themselves through that OTA like firmware, then talk and hear themselves back (echo
 *   agent),
 * and prints a one-line summary every second. Ctrl-C (or `npm stop` from another
 * terminal) tears everything down.
 *
 *   npm start                       8 devices, until Ctrl-C
 *   npm start -- --devices 50 --duration 60 --mode realtime
 *   npm start -- --devices 0 --public-host 192.168.1.20
 *                                   broker, gateways and OTA on that address, for a real
 *                                   device whose OTA URL is http://192.168.1.20:8002/xiaozhi/ota/
 *   npm start -- --insecure-no-device-auth
 *                                   the broker lets any device in (loud warning)
 *   npm start -- --run-dir /tmp/box  everything it writes (PM2 home, key, logs, bundle) there;
 *                                   `npm stop -- --run-dir /tmp/box` stops that box
 */

import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { stop as stopEsbuild } from "esbuild";
import { DEFAULT_ECOSYSTEM, instancePorts } from "../deploy/ecosystem.ts";
import { type OtaServer, startOtaServer } from "../gateway/src/ota/ota-server.ts";
import { buildBundle } from "../scripts/build.ts";
import { waitReady } from "./load/health-client.ts";
import { type DeviceMode, startDevices } from "./local-box/devices.ts";
import { assertPortsFree, boxPorts } from "./local-box/free-ports.ts";
import { pidFileOwner, stopLeftovers, writePidFile } from "./local-box/leftovers.ts";
import { RUN_DIR_MARK, stopMarked } from "./local-box/processes.ts";
import { type RunPaths, runPaths } from "./local-box/run-paths.ts";
import { startSummary } from "./local-box/summary.ts";
import { Teardown } from "./local-box/teardown.ts";
import { PM2_START_BOUNDS, Pm2NoAnswer, type Pm2Options, pm2, pm2DaemonRuns, pm2Kill, ROOT } from "./pm2.ts";
import { superviseBroker } from "./sim/broker-supervisor.ts";
import { loadOrCreateSigningKey } from "./sim/dev-signing-key.ts";

const teardown = new Teardown();
/** How long what the teardown stopped gets to be gone before SIGKILL. */
const EXIT_GRACE_MS = 3000;

const INSECURE_WARNING = [
  "",
  "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  "!! WARNING: DEVICE AUTHENTICATION IS OFF (--insecure-no-device-auth).            !!",
  "!! The broker accepts ANY client id with ANY password: anyone who reaches it can !!",
  "!! pose as any device. Never use this mode where others can reach the broker.    !!",
  "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  "",
].join("\n");

async function up(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: "string", default: "8" },
      duration: { type: "string", default: "0" },
      mode: { type: "string", default: "auto" },
      "broker-port": { type: "string", default: "1883" },
      "ota-port": { type: "string", default: "8002" },
      "public-host": { type: "string", default: "127.0.0.1" },
      "insecure-no-device-auth": { type: "boolean", default: false },
      "run-dir": { type: "string" },
    },
  });
  const deviceCount = Number(values.devices);
  const durationS = Number(values.duration);
  const mode = values.mode as DeviceMode;
  const publicHost = values["public-host"];
  const insecure = values["insecure-no-device-auth"];
  if (!Number.isInteger(deviceCount) || deviceCount < 0) throw new Error("--devices must be a whole number");
  if (!["auto", "realtime", "manual"].includes(mode))
    throw new Error("--mode must be auto, realtime or manual");
  for (const flag of ["broker-port", "ota-port"] as const) {
    const port = Number(values[flag]);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`--${flag} must be a port, 1..65535`);
  }
  // It is what devices are told to connect to (OTA endpoint, hello reply), not a bind-all:
  // a device told 0.0.0.0 connects to nothing.
  if (isIP(publicHost) !== 0 && isUnspecified(publicHost))
    throw new Error(
      `--public-host ${publicHost} is no address a device can reach: give this machine's LAN address`,
    );
  // Firmware reads the OTA's MQTT endpoint up to its first ':' as the host (docs/device-
  // protocol.md 1.5): told "fd00::5:1883", a device would look for host "fd00".
  if (publicHost.includes(":"))
    throw new Error(
      `--public-host ${publicHost} is an IPv6 address, which firmware cannot be told (it reads the MQTT endpoint's host up to the first ':'): give this machine's IPv4 LAN address or a host name`,
    );
  const run = runPaths(values["run-dir"]);
  const owner = pidFileOwner(run);
  if (owner?.alive) throw new Error(`a local box is already running (pid ${owner.pid}); run npm stop first`);
  // Before anything is started: all of it carries the mark, the PM2 daemon and its apps too,
  // and one that the `pm2 kill` of stopLeftovers may start to talk to (PM2's CLI does where
  // no daemon runs): unmarked, one slow to exit outlived the box's exit.
  process.env[RUN_DIR_MARK] = run.dir;
  // What a box of this folder that was killed (kill -9) left: its broker holds the port. Its
  // PM2 daemon goes too, and one without the mark (left by a box from before it:
  // processes.ts), which would keep its old apps.
  for (const line of await stopLeftovers(run, owner)) console.log(line);
  const ports = instancePorts(DEFAULT_ECOSYSTEM);
  // Each port held (or a --public-host not of this machine) named now, before anything
  // starts: later, each showed up unnamed, or not at all (free-ports.ts).
  await assertPortsFree(
    boxPorts({
      publicHost,
      brokerPort: Number(values["broker-port"]),
      otaPort: Number(values["ota-port"]),
      instances: ports,
    }),
  );
  teardown.check();
  mkdirSync(run.dir, { recursive: true });
  teardown.check();
  writePidFile(run);
  teardown.started("", () => rmSync(run.pidFile, { force: true }));
  // Last before the pid file goes: the exit means that everything the box started is gone.
  teardown.started("", () => stopEverythingLeft(run));
  const pm2Options = { home: run.pm2Home };

  // esbuild's service process would run until the box exits, one more process for the
  // teardown's last step to wait for (3 s): stopped after the build, or by a stop during it.
  teardown.started("", () => stopEsbuild());
  console.log(`building the gateway bundle (${path.relative(ROOT, run.dist)}/)...`);
  await buildBundle(run.dist);
  await stopEsbuild();
  teardown.check();
  // The bundle keeps npm packages external (scripts/build.ts), and Node finds them in the
  // nearest node_modules above dist/: ROOT's for dist/ or a run folder in the checkout, none
  // for one elsewhere (`--run-dir /tmp/box`: every gateway died on "Cannot find package").
  const fromRoot = path.relative(ROOT, run.dist);
  if (fromRoot === ".." || fromRoot.startsWith(`..${path.sep}`))
    symlinkSync(path.join(ROOT, "node_modules"), path.join(run.dist, "node_modules"), "dir");
  const signing = loadOrCreateSigningKey(run.keyFile);
  if (insecure) console.warn(INSECURE_WARNING);
  else
    console.log(
      `device authentication on: ${signing.created ? "generated" : "using"} the development signing key in ${path.relative(ROOT, run.keyFile)} (0600)`,
    );
  const password = randomBytes(18).toString("base64url");
  const broker = await teardown.start(
    "broker",
    () =>
      superviseBroker({
        host: publicHost,
        port: Number(values["broker-port"]),
        gatewayPassword: password,
        ...(insecure ? {} : { deviceSigningKey: signing.key }),
        stderr: openSync(run.brokerLog, "a", 0o600),
        // Out of the terminal's reach, as PM2's daemon and its gateways are: a Ctrl-C (SIGINT
        // to the terminal's whole foreground process group) ended the broker at once, the box
        // restarted it mid-stop, and the gateways drained without it (their devices got no
        // goodbye). The teardown stops it after the gateways (tools/test/local-box-ctrl-c.test.ts).
        // A box ended by SIGKILL leaves it running, as it leaves PM2's daemon: the next `npm
        // start` or `npm stop` finds it by its mark and stops it (local-box/leftovers.ts).
        detached: true,
        onEvent: (e) => {
          if (e.kind === "exited")
            console.log(`broker exited (code ${e.code}, signal ${e.signal}); restarting...`);
          else if (e.kind === "restarted") console.log(`broker restarted (${e.restarts} restarts so far)`);
          else console.log(`broker restart failed: ${e.error}; retrying in ${e.retryInMs} ms`);
        },
      }),
    (b) => b?.stop(),
  );
  console.log(`broker listening on ${broker.url} (log: ${path.relative(ROOT, run.brokerLog)})`);
  // Host settings and secrets for the instances, as /etc/voice-gateway/gateway.env on the droplet.
  writeFileSync(
    run.envFile,
    [
      `PUBLIC_HOST=${publicHost}`,
      // Bound to the address devices are told, so that replies leave from it: a socket on
      // 0.0.0.0 answers from the kernel's pick (another address of a host with several),
      // which a device drops, its socket being connected to the address it was told (as on
      // the droplet: docs/runbook.md; tools/test/local-box-lan.test.ts).
      `UDP_BIND=${publicHost}`,
      `MQTT_URL=${broker.url}`,
      "MQTT_USERNAME=gateway",
      `MQTT_PASSWORD=${password}`,
      // For the device verifier (PM2 app device-auth): the same key the broker checks
      // devices with here, as EMQX's HTTP authenticator would call it in production.
      `MQTT_SIGNING_KEY=${signing.key}`,
      "LOG_LEVEL=info",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  await teardown.start(
    "gateways (drain)",
    async () => {
      await pm2(["start", path.join(run.dist, "ecosystem.config.cjs")], {
        ...pm2Options,
        env: { GATEWAY_ENV_FILE: run.envFile },
        bounds: PM2_START_BOUNDS,
        // Out of the terminal's reach: a Ctrl-C or hang-up sent to the box's process group
        // killed this CLI mid-start, and the box took that for a failed start (exit 1)
        // before its own handler had begun the stop. The stop awaits this step (bounded
        // above), then kills PM2 (teardown.ts).
        detached: true,
      }).catch((err: Error) => {
        if (!(err instanceof Pm2NoAnswer)) throw err;
        // The teardown then stops what the box started (a daemon it started is SIGKILLed
        // by its last step); one it did not start (no mark) is left for the developer.
        throw new Error(
          `PM2 did not start the gateways: ${err.message}\nStopping what the box started. A daemon of that PM2 home still running after this exit was not started by this box: end it with \`kill -9 $(cat ${path.join(run.pm2Home, "pm2.pid")})\`, then npm start again.`,
        );
      });
    },
    // Bounded: a daemon that does not answer is SIGKILLed with its apps by the last step.
    () => killPm2(pm2Options),
  );
  await Promise.all(ports.map((p) => waitReady(`http://127.0.0.1:${p.healthPort}`)));
  teardown.check();
  console.log(
    `${ports.length} gateway instances ready under PM2 (PM2_HOME=${path.relative(ROOT, run.pm2Home)}); health: ${ports.map((p) => `http://127.0.0.1:${p.healthPort}/health`).join(" ")}`,
  );
  const ota: OtaServer = await teardown.start(
    "OTA",
    () =>
      startOtaServer({
        host: publicHost,
        port: Number(values["ota-port"]),
        settings: { mqttEndpoint: `${publicHost}:${broker.port}`, signingKey: signing.key },
        onAnswer: (answer, remote) => {
          // Real devices are the interesting ones: the simulated ones provision every start.
          if (deviceCount > 0 && !answer.ok) console.log(`OTA refused ${remote}: ${answer.refusal}`);
          if (deviceCount === 0)
            console.log(
              answer.ok
                ? `OTA: provisioned ${answer.mac} from ${remote} (client id ${answer.body.mqtt.client_id})`
                : `OTA: refused ${remote}: ${answer.refusal} (HTTP ${answer.status})`,
            );
        },
      }),
    (o) => o?.close(),
  );
  console.log(`OTA endpoint (development only): ${ota.url}  <- set this as a device's OTA URL`);

  const fleet = await startDevices({ count: deviceCount, mode, otaUrl: ota.url, teardown });
  startSummary({ ports, fleet, ota, broker, insecure, durationS, teardown });
}

/** 0.0.0.0 or :: (any spelling: `::0`, `0:0::0`), the "any address" of bind(). */
function isUnspecified(ip: string): boolean {
  const list = new BlockList();
  list.addAddress("0.0.0.0", "ipv4");
  list.addAddress("::", "ipv6");
  return list.check(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
}

async function down(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { "run-dir": { type: "string" } } });
  const run = runPaths(values["run-dir"]);
  const owner = pidFileOwner(run);
  if (owner?.alive) {
    process.kill(owner.pid, "SIGTERM");
    console.log(`asked the local box (pid ${owner.pid}) to stop`);
    return;
  }
  // It kills the PM2 daemon, with the mark or without: a second `pm2 kill` here found none,
  // and started one of its own to talk to.
  for (const line of await stopLeftovers(run, owner)) console.log(line);
  // One that did not answer `pm2 kill` and carries no mark (started by no box, or by one from
  // before the mark) is still there with its apps: saying "stopped" would send the
  // developer to `npm start` against it.
  if (pm2DaemonRuns(run.pm2Home))
    throw new Error(
      `the PM2 daemon of ${run.pm2Home} still runs (it did not answer \`pm2 kill\`, and no box started it): end it with \`kill -9 $(cat ${path.join(run.pm2Home, "pm2.pid")})\`, then npm stop again`,
    );
  console.log(`local box stopped (PM2 home ${path.relative(ROOT, run.pm2Home)})`);
}

/** `pm2 kill`, saying so when the daemon did not answer within its bounds (tools/pm2.ts). */
async function killPm2(options: Pm2Options): Promise<void> {
  const noAnswer = await pm2Kill(options);
  if (noAnswer !== undefined) console.log(noAnswer);
}

/**
 * After the teardown's steps: what they stopped may still be on its way out (PM2's daemon
 * exits after `pm2 kill` has returned), and what would not stop is killed. The box's exit
 * then means that nothing it started is left; if something is, its exit status is 1.
 */
async function stopEverythingLeft(run: RunPaths): Promise<void> {
  const left = await stopMarked(run.dir, {
    graceMs: EXIT_GRACE_MS,
    onKill: (p) =>
      console.log(`still running ${EXIT_GRACE_MS} ms after its stop, SIGKILL: ${p.pid} ${p.command}`),
  });
  if (left.length > 0)
    throw new Error(`still running after SIGKILL: ${left.map((p) => `${p.pid} ${p.command}`).join("; ")}`);
}

// The box's output is for whoever watches it. When that reader is gone (`npm start | tee
// log` whose tee ended first on Ctrl-C, a test that died), a write fails with EPIPE, or
// with EIO on a terminal that was closed (SIGHUP); that must not end the box mid-teardown
// with its PM2 daemon and gateways left running.
for (const stream of [process.stdout, process.stderr])
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" && err.code !== "EIO") throw err;
  });

const [command, ...rest] = process.argv.slice(2);
if (command !== "down") {
  // Before anything is started (teardown): Node's default action on these would end the
  // box at once, leaving its PM2 daemon and the gateways running (PM2 daemonizes out of
  // the terminal's reach). SIGHUP is a closed terminal. Exit status 0: the box was asked
  // to stop, and stopped.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(signal, () => {
      if (teardown.stopping)
        console.log(
          `${signal}: still stopping, so that nothing is left running (kill -9 ${process.pid} ends it at once; npm stop then stops what it left)`,
        );
      void teardown.stop(0);
    });
}
const main = command === "down" ? down(rest) : up(rest);
main.catch(async (err: Error) => {
  // Start-up cut short by a stop, or failing because the teardown took what it was using
  // (a device connecting to a broker being stopped): the teardown under way exits.
  if (teardown.stopping) return;
  console.error(`local box: ${err.message}`);
  await teardown.stop(1);
});
