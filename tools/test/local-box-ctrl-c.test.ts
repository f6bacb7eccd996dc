/**
 * Ctrl-C in the terminal that runs `npm start`, once the box is ready and a device is in
 * session: the terminal sends SIGINT to its whole foreground process group, the box and
 * every child left in that group. The box must stop in its order, the gateways' drain
 * first (each tells its devices goodbye and leaves over MQTT) while the broker still runs,
 * then the broker; and exit 0 with nothing left.
 *
 * Before the fix, the broker was in the box's process group: the SIGINT ended it at once,
 * the box printed "broker exited ... restarting...", the device lost its connection without
 * a goodbye, and the gateways' drain found no broker. With the broker out of the group,
 * each gateway still logged "broker connection lost" once: its MQTT client reported the
 * close of its own end(), the drain's last step, as a lost connection.
 *
 * A real box (`--devices 0`, its own `--run-dir`) in a network namespace of its own
 * (support/local-box.ts), leading its own process group as a shell's foreground job does;
 * the devices are the simulated firmware of tools/test/lan-host.ts (`hold`, all in one
 * process), run in that namespace by the test, out of the box's group, as a hardware
 * engineer's devices on the LAN are. CTRL_C_TEST_DEVICES sets how many (default 20): each
 * must hear its goodbye before its connection closes.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { endOf } from "../../gateway/test/support/child-exit.ts";
import { createNamespace, type NetNamespace } from "../../gateway/test/support/netns.ts";
import { ROOT } from "../pm2.ts";
import type { HoldReport } from "./lan-host.ts";
import { type LocalBox, leftIn, Output, startLocalBox, untilTeardownKillsPm2 } from "./support/local-box.ts";

/** Every line the gateways and the verifier logged (PM2's log files of the box's PM2 home). */
function pm2Logs(runDir: string): string[] {
  const dir = path.join(runDir, "pm2", "logs");
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) =>
    readFileSync(path.join(dir, f), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => `${f}: ${l}`),
  );
}

/** Devices in session at the Ctrl-C; the README's stop times were measured with 1, 10 and 50. */
const DEVICES = Number(process.env.CTRL_C_TEST_DEVICES ?? "20");

interface CtrlCRun {
  readonly exitCode: number | null;
  readonly stopMs: number;
  readonly printed: readonly string[];
  readonly reports: readonly HoldReport[];
  readonly logs: readonly string[];
  readonly left: readonly string[];
  readonly pidFileLeft: boolean;
  /** The second Ctrl-C was sent while the teardown's `pm2 kill` ran. */
  readonly againDuringDrain: boolean;
}

/**
 * A ready box with `devices` held devices in session, then Ctrl-C; `again`: a second Ctrl-C
 * as soon as the box says it is stopping (while it tears down).
 */
async function ctrlC(t: TestContext, devices: number, again: boolean): Promise<CtrlCRun> {
  if (process.getuid?.() !== 0) assert.fail("this test needs root (network namespaces)");
  const runDir = path.join(tmpdir(), `test-box-ctrl-c-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  const ns: NetNamespace = await createNamespace("box");
  let box: LocalBox | undefined;
  let device: ChildProcess | undefined;
  t.after(async () => {
    for (const child of [box?.process, device])
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await ns.destroy();
    rmSync(runDir, { recursive: true, force: true });
  });
  box = startLocalBox(ns, ["--devices", "0", "--run-dir", runDir], { processGroup: true });
  const pid = box.process.pid;
  if (pid === undefined) assert.fail("the box did not start");
  const ready = await box.output.waitFor(/OTA endpoint \(development only\): (\S+)/, 150_000, box.exited);
  const otaUrl = ready[1] ?? "";

  // Devices in session on the gateways, out of the box's process group.
  device = ns.spawn(
    process.execPath,
    ["--import", "tsx", "tools/test/lan-host.ts", "hold", otaUrl, "7", String(devices)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const deviceExited = endOf(device).then(({ code }) => code);
  const deviceOutput = new Output(device.stdout as NodeJS.ReadableStream);
  device.stderr?.on("data", (d: Buffer) => deviceOutput.lines.push(`stderr: ${d.toString().trimEnd()}`));
  await deviceOutput.waitFor(/^in session$/, 30_000, deviceExited);

  const sent = Date.now();
  process.kill(-pid, "SIGINT");
  let againDuringDrain = false;
  if (again) {
    // While `pm2 kill` runs, the gateways draining: a second Ctrl-C that reached that CLI
    // would end it mid-kill, with gateways left running and their devices told nothing.
    if (await untilTeardownKillsPm2(box, ns, 10_000)) {
      process.kill(-pid, "SIGINT");
      againDuringDrain = true;
    }
  }
  const exitCode = await box.exited;
  const stopMs = Date.now() - sent;
  t.diagnostic(`${devices} devices, Ctrl-C to the box's exit: ${stopMs} ms`);

  const deviceCode = await deviceExited;
  assert.equal(deviceCode, 0, `the devices exited ${deviceCode}:\n${deviceOutput.lines.join("\n")}`);
  return {
    exitCode,
    stopMs,
    printed: box.output.lines,
    reports: JSON.parse(deviceOutput.lines.at(-1) ?? "[]") as HoldReport[],
    logs: pm2Logs(runDir),
    left: leftIn(ns),
    pidFileLeft: existsSync(path.join(runDir, "local-box.pid")),
    againDuringDrain,
  };
}

/** What a clean stop must show, all in one object, so that a failure shows every part that went wrong. */
function stopShape(run: CtrlCRun) {
  return {
    exitCode: run.exitCode,
    restartLines: run.printed.filter((l) => /restart/i.test(l)),
    // Each device heard its gateway's goodbye while its connection was up.
    devices: {
      heardGoodbye: run.reports.filter((r) => r.goodbye !== undefined).length,
      closedFirst: run.reports.filter((r) => r.closedFirst).length,
    },
    brokerLostLines: run.logs.filter((l) => l.includes("broker connection lost")),
    // Every gateway drained to its end: none cut short by its drain timeout or PM2's kill.
    gatewaysDrained: run.logs.filter((l) => l.includes('"drained; bye"')).length,
    drainTimedOut: run.logs.filter((l) => l.includes("drain timed out")),
    left: run.left,
    pidFileLeft: run.pidFileLeft,
  };
}

function cleanStop(devices: number) {
  return {
    exitCode: 0,
    restartLines: [],
    devices: { heardGoodbye: devices, closedFirst: 0 },
    brokerLostLines: [],
    gatewaysDrained: 4,
    drainTimedOut: [],
    left: [],
    pidFileLeft: false,
  };
}

test(`Ctrl-C (SIGINT to the box's process group) with ${DEVICES} devices in session: the gateways drain while the broker runs, then the broker stops; each device hears goodbye; exit 0, nothing left`, {
  timeout: 240_000,
}, async (t) => {
  const run = await ctrlC(t, DEVICES, false);
  assert.deepEqual(stopShape(run), cleanStop(DEVICES), `the box's output:\n${run.printed.join("\n")}`);
  // A clean stop prints what a user needs: the stopping line, nothing else.
  assert.deepEqual(run.printed.slice(run.printed.findIndex((l) => l.startsWith("stopping: "))), [
    "stopping: OTA, gateways (drain), broker...",
  ]);
});

test("a second Ctrl-C while the gateways drain (the teardown's pm2 kill): it says it is still stopping, and the stop goes on to its end (goodbyes, exit 0, nothing left)", {
  timeout: 240_000,
}, async (t) => {
  const devices = 5;
  const run = await ctrlC(t, devices, true);
  assert.deepEqual(stopShape(run), cleanStop(devices), `the box's output:\n${run.printed.join("\n")}`);
  assert.deepEqual(
    {
      againDuringDrain: run.againDuringDrain,
      said: run.printed.filter((l) => /^SIGINT: still stopping, so that nothing is left running/.test(l))
        .length,
    },
    { againDuringDrain: true, said: 1 },
    `the box's output:\n${run.printed.join("\n")}`,
  );
});
