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
 * the device is the simulated firmware of tools/test/lan-host.ts (`hold`), run in that
 * namespace by the test, out of the box's group.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { endOf } from "../../gateway/test/support/child-exit.ts";
import { createNamespace, type NetNamespace } from "../../gateway/test/support/netns.ts";
import { ROOT } from "../pm2.ts";
import type { HoldReport } from "./lan-host.ts";
import { type LocalBox, leftIn, Output, startLocalBox } from "./support/local-box.ts";

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

test("Ctrl-C (SIGINT to the box's process group): the gateways drain while the broker runs, then the broker stops; exit 0, nothing left", {
  timeout: 240_000,
}, async (t) => {
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

  // A device in session on one of the gateways, out of the box's process group.
  device = ns.spawn(process.execPath, ["--import", "tsx", "tools/test/lan-host.ts", "hold", otaUrl, "7"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const deviceExited = endOf(device).then(({ code }) => code);
  const deviceOutput = new Output(device.stdout as NodeJS.ReadableStream);
  device.stderr?.on("data", (d: Buffer) => deviceOutput.lines.push(`stderr: ${d.toString().trimEnd()}`));
  await deviceOutput.waitFor(/^in session$/, 30_000, deviceExited);

  const sent = Date.now();
  process.kill(-pid, "SIGINT");
  const code = await box.exited;
  const stopMs = Date.now() - sent;
  t.diagnostic(`Ctrl-C to the box's exit: ${stopMs} ms`);
  const printed = box.output.lines.join("\n");

  const deviceCode = await deviceExited;
  const last = deviceOutput.lines.at(-1) ?? "";
  assert.equal(deviceCode, 0, `the device exited ${deviceCode}:\n${deviceOutput.lines.join("\n")}`);
  const report = JSON.parse(last) as HoldReport;
  const logs = pm2Logs(runDir);

  // All in one comparison, so that a failure shows every part of the stop that went wrong.
  const drained = logs.filter((l) => l.includes('"drained; bye"')).length;
  assert.deepEqual(
    {
      exitCode: code,
      restartLines: box.output.lines.filter((l) => /restart/i.test(l)),
      // The device heard its gateway's goodbye while its connection was up.
      device: { heardGoodbye: report.goodbye !== undefined, closedFirst: report.closedFirst },
      brokerLostLines: logs.filter((l) => l.includes("broker connection lost")),
      // Every gateway drained to its end: none cut short by its drain timeout or PM2's kill.
      gatewaysDrained: drained,
      left: leftIn(ns),
      pidFileLeft: existsSync(path.join(runDir, "local-box.pid")),
    },
    {
      exitCode: 0,
      restartLines: [],
      device: { heardGoodbye: true, closedFirst: false },
      brokerLostLines: [],
      gatewaysDrained: 4,
      left: [],
      pidFileLeft: false,
    },
    `the box's output:\n${printed}\nthe device's: ${last}`,
  );
});
