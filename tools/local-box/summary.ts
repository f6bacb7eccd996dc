/**
 * The local box's one line a second: sessions per gateway instance, the devices' frames and
 * errors, the OTA's answers, broker restarts; and the end of --duration.
 */
import type { InstancePorts } from "../../deploy/ecosystem.ts";
import type { OtaServer } from "../../gateway/src/ota/ota-server.ts";
import { fetchHealth } from "../load/health-client.ts";
import type { SupervisedBroker } from "../sim/broker-supervisor.ts";
import type { DeviceFleet } from "./devices.ts";
import type { Teardown } from "./teardown.ts";

export function startSummary(options: {
  readonly ports: readonly InstancePorts[];
  readonly fleet: DeviceFleet;
  readonly ota: OtaServer;
  readonly broker: SupervisedBroker;
  readonly insecure: boolean;
  /** 0: until stopped. */
  readonly durationS: number;
  readonly teardown: Teardown;
}): void {
  const { ports, ota, broker, insecure, durationS, teardown } = options;
  const { devices, goodbyes } = options.fleet;
  const started = Date.now();
  let lastRecv = 0;
  const summary = setInterval(async () => {
    const healths = await Promise.all(ports.map((p) => fetchHealth(`http://127.0.0.1:${p.healthPort}`, 800)));
    const perInstance = healths.map((h) => (h ? String(h.sessions) : "down")).join("/");
    const recv = devices.reduce((n, d) => n + d.stats.framesReceived, 0);
    const sent = devices.reduce((n, d) => n + d.stats.framesSent, 0);
    const errors = devices.reduce(
      (n, d) => n + Object.values(d.stats.errors).reduce((a, b) => a + (b ?? 0), 0),
      0,
    );
    // Which checks failed, e.g. audio that arrived while the broker was down and its
    // `tts start` was lost: firmware would not have played it either.
    const byKind: Record<string, number> = {};
    for (const d of devices)
      for (const [kind, n] of Object.entries(d.stats.errors)) byKind[kind] = (byKind[kind] ?? 0) + (n ?? 0);
    const live = devices.filter((d) => d.session).length;
    const t = Math.round((Date.now() - started) / 1000);
    const refused = Object.values(ota.stats.refused).reduce((a, b) => a + (b ?? 0), 0);
    process.stdout.write(
      `[${t}s] devices ${live}/${devices.length} in session | sessions per instance ${perInstance} | frames up ${sent} down ${recv} (+${recv - lastRecv}/s) | device errors ${errors}${errors ? ` ${JSON.stringify(byKind)}` : ""} | ota ${ota.stats.served} served ${refused} refused${broker.restarts ? ` | broker restarts ${broker.restarts}` : ""}${insecure ? " | DEVICE AUTH OFF" : ""}${goodbyes.size ? ` | goodbyes ${JSON.stringify(Object.fromEntries(goodbyes))}` : ""}\n`,
    );
    lastRecv = recv;
    if (durationS > 0 && t >= durationS) void teardown.stop(errors > 0 ? 1 : 0);
  }, 1000);
  teardown.started("", () => clearInterval(summary));
}
