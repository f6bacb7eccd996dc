/**
 * Another host on the local box's LAN, for tools/test/local-box-lan.test.ts, which runs this
 * inside a network namespace of its own (gateway/test/support/netns.ts). It prints one JSON
 * document on stdout: what it saw.
 *
 *   lan-host.ts device <ota url> <index>   a freshly flashed device: OTA request, MQTT with
 *                                          the credentials it returned, hello, speech over
 *                                          UDP, its echo heard back; then goodbye
 *   lan-host.ts hold <ota url> <index> [count]
 *                                          `count` devices (default 1; indexes from
 *                                          `index` on) that each provision, connect and say
 *                                          hello; prints `in session` once all are, then
 *                                          each stays until its gateway tells it goodbye or
 *                                          its MQTT connection closes (60 s at most): which
 *                                          came first, one report a device
 *   lan-host.ts probe <kind:host:port>...  for each tcp: or udp: target, whether it is
 *                                          refused, open, or silent
 */
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { simulatedMac } from "../sim/device-identity.ts";
import type { DeviceMessage } from "../sim/hello-reply.ts";
import { boardUuid, provision, provisionedDevice } from "../sim/provision.ts";

export interface DeviceReport {
  /** The OTA's whole answer. */
  readonly ota: Readonly<Record<string, unknown>>;
  /** The OTA's `mqtt.username`, decoded (base64 JSON, `{ip}` of the peer the OTA saw). */
  readonly username: unknown;
  /** Every MQTT message the device received, in order. */
  readonly messages: readonly DeviceMessage[];
  readonly framesSent: number;
  readonly framesReceived: number;
  readonly errors: Readonly<Record<string, number>>;
}

export interface HoldReport {
  /** The reason of the gateway's goodbye, if one came while the MQTT connection was up. */
  readonly goodbye: string | undefined;
  /** Whether the MQTT connection closed before any goodbye (the broker went first). */
  readonly closedFirst: boolean;
}

/** How long `hold` waits for the goodbye or the close. */
const HOLD_MS = 60_000;

/** One held device: in session, then what ended its wait. */
async function holdOne(otaUrl: string, index: number, inSession: () => Promise<void>): Promise<HoldReport> {
  const mac = simulatedMac(index);
  const p = await provision({ otaUrl, mac, uuid: boardUuid(mac) });
  const d = provisionedDevice(p, { mac, index });
  await d.connect();
  await d.hello();
  await inSession();
  const report = await new Promise<HoldReport>((resolve) => {
    const timer = setTimeout(() => resolve({ goodbye: undefined, closedFirst: false }), HOLD_MS);
    d.once("server_goodbye", (reason: string) => {
      clearTimeout(timer);
      resolve({ goodbye: reason, closedFirst: false });
    });
    d.once("mqtt_closed", () => {
      clearTimeout(timer);
      resolve({ goodbye: undefined, closedFirst: true });
    });
  });
  await d.close();
  return report;
}

/** `count` devices held at once, each in session before any report can come (the box is signalled only after `in session`). */
async function hold(otaUrl: string, first: number, count: number): Promise<HoldReport[]> {
  let waiting = count;
  let allIn: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    allIn = resolve;
  });
  const inSession = async () => {
    waiting -= 1;
    if (waiting === 0) {
      console.log("in session");
      allIn();
    }
    await all;
  };
  return Promise.all(Array.from({ length: count }, (_, i) => holdOne(otaUrl, first + i, inSession)));
}

/** What a probe found: `refused` (RST or ICMP port unreachable), `open`, or `silent`. */
export type ProbeResult = "refused" | "open" | "silent" | `error ${string}`;

async function device(otaUrl: string, index: number): Promise<DeviceReport> {
  const mac = simulatedMac(index);
  const p = await provision({ otaUrl, mac, uuid: boardUuid(mac) });
  const d = provisionedDevice(p, { mac, index });
  try {
    await d.connect();
    await d.hello();
    d.listen("realtime");
    const stop = d.waitForMessage((m) => m.type === "tts" && m.state === "stop", 15_000);
    d.talk(600);
    await stop;
    await d.goodbye();
  } finally {
    await d.close();
  }
  const mqtt = p.document.mqtt as Record<string, unknown>;
  return {
    ota: p.document,
    username: JSON.parse(Buffer.from(String(mqtt.username), "base64").toString("utf8")),
    messages: d.messages,
    framesSent: d.stats.framesSent,
    framesReceived: d.stats.framesReceived,
    errors: d.stats.errors,
  };
}

/** Silent this long: nothing listens and says so (a UDP port that drops what it gets, or a filter). */
const SILENT_AFTER_MS = 3000;

function probe(target: string): Promise<ProbeResult> {
  const [kind, host, port] = target.split(":");
  if ((kind !== "tcp" && kind !== "udp") || !host || !port) throw new Error(`bad probe target ${target}`);
  return new Promise((resolve) => {
    const failed = (err: NodeJS.ErrnoException) =>
      resolve(err.code === "ECONNREFUSED" ? "refused" : `error ${err.code ?? err.message}`);
    if (kind === "tcp") {
      const socket = connect({ host, port: Number(port), timeout: SILENT_AFTER_MS });
      socket.once("connect", () => {
        socket.destroy();
        resolve("open");
      });
      socket.once("timeout", () => {
        socket.destroy();
        resolve("silent");
      });
      socket.once("error", failed);
      return;
    }
    // A connected UDP socket is told of the ICMP port unreachable that a closed port answers.
    const socket = createSocket("udp4");
    const done = (result: ProbeResult) => {
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => done("silent"), SILENT_AFTER_MS);
    const failedUdp = (err: NodeJS.ErrnoException) =>
      done(err.code === "ECONNREFUSED" ? "refused" : `error ${err.code ?? err.message}`);
    socket.once("error", failedUdp);
    // A failed connect comes to the callback, not as an `error` event.
    socket.connect(Number(port), host, (err?: Error) =>
      err ? failedUdp(err) : socket.send(Buffer.from([0])),
    );
  });
}

const [command, ...args] = process.argv.slice(2);
if (command === "device") {
  const [otaUrl, index] = args;
  if (!otaUrl || !index) throw new Error("usage: lan-host.ts device <ota url> <index>");
  console.log(JSON.stringify(await device(otaUrl, Number(index))));
} else if (command === "hold") {
  const [otaUrl, index, count = "1"] = args;
  if (!otaUrl || !index || !(Number(count) >= 1))
    throw new Error("usage: lan-host.ts hold <ota url> <index> [count >= 1]");
  console.log(JSON.stringify(await hold(otaUrl, Number(index), Number(count))));
} else if (command === "probe") {
  const results = await Promise.all(args.map(async (t) => [t, await probe(t)] as const));
  console.log(JSON.stringify(Object.fromEntries(results)));
} else {
  throw new Error(`unknown command ${command}: device, hold or probe`);
}
// Done: a socket still closing (the MQTT client after its DISCONNECT) need not hold the process.
process.exit(0);
