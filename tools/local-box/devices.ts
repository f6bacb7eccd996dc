/**
 * The local box's simulated devices: each provisions itself through the box's OTA as
 * firmware does at boot, connects, says hello, then speaks a sentence every few seconds and
 * hears it back; re-hellos when the gateway says goodbye, reconnects when the broker goes.
 */
import type { SimulatedDevice } from "../sim/device.ts";
import { loopbackAddress } from "../sim/device-identity.ts";
import { provisionDevice } from "../sim/provision.ts";
import type { Teardown } from "./teardown.ts";

export type DeviceMode = "auto" | "realtime" | "manual";

export interface DeviceFleet {
  readonly devices: readonly SimulatedDevice[];
  /** Goodbyes the gateways sent, by reason. */
  readonly goodbyes: ReadonlyMap<string, number>;
}

export async function startDevices(options: {
  readonly count: number;
  readonly mode: DeviceMode;
  readonly otaUrl: string;
  readonly teardown: Teardown;
}): Promise<DeviceFleet> {
  const { count, mode, otaUrl, teardown } = options;
  const devices: SimulatedDevice[] = [];
  const openChannel = async (d: SimulatedDevice) => {
    await d.hello();
    d.listen(mode);
  };
  for (let i = 0; i < count; i++) {
    // Like firmware at boot: ask the OTA for MQTT settings, then connect with them.
    const d = await teardown.start(
      "devices",
      () =>
        provisionDevice({
          otaUrl,
          index: i + 1,
          udpBindAddress: loopbackAddress(i + 1),
        }),
      (device) => device?.close(),
    );
    devices.push(d);
    await d.connect();
    await openChannel(d);
    teardown.check();
  }
  // Each device speaks a sentence, then waits to hear it back, then speaks again.
  const talkOnce = (d: SimulatedDevice) => {
    if (!d.session || (d.speaking && mode !== "realtime")) return;
    d.talk(1200 + Math.floor(Math.random() * 1200));
  };
  devices.forEach(talkOnce);
  const conversation = setInterval(() => devices.forEach(talkOnce), 4000);
  teardown.started("", () => clearInterval(conversation));
  const goodbyes = new Map<string, number>();
  for (const d of devices) {
    d.on("server_goodbye", (reason) => {
      goodbyes.set(reason, (goodbyes.get(reason) ?? 0) + 1);
      // The gateway closed our session (drain, restart): re-hello, as firmware does on
      // its next interaction.
      if (!teardown.stopping) void openChannel(d).catch(() => {});
    });
    // The broker went away (it is restarted by its supervisor): reconnect and re-hello,
    // as firmware does (after 60 s there; 2 s here, to keep the box lively).
    d.on("mqtt_closed", () => reconnect(d));
  }
  const reconnect = (d: SimulatedDevice) => {
    if (teardown.stopping) return;
    setTimeout(() => {
      if (teardown.stopping) return;
      d.connect()
        .then(() => openChannel(d))
        .catch(() => reconnect(d));
    }, 2000);
  };
  return { devices, goodbyes };
}
