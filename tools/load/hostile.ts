/**
 * The soak's hostile-traffic catalogue (tools/soak.ts): garbage, replayed and spoofed
 * datagrams, malformed and foreign MQTT messages from authenticated hostile devices, hello
 * floods, UDP hijack attempts and broker takeover attempts, mixed in with the legitimate
 * devices' traffic. What each attack must not achieve is counted in `HostileTally`.
 */
import { randomBytes, randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import mqtt from "mqtt";
import { sealAudioPacket } from "../../gateway/src/protocol/audio-packet.ts";
import { UDP_HEADER_BYTES, writeUdpHeader } from "../../gateway/src/protocol/udp-packet.ts";
import { SimulatedDevice } from "../sim/device.ts";
import { firmwareHello } from "../sim/firmware-hello.ts";
import { upstreamClip } from "../sim/opus-frames.ts";

export interface HostileTarget {
  readonly brokerUrl: string;
  /** Signs the hostile devices' credentials: they are authenticated, as a stolen device is. */
  readonly signingKey: string;
  /** The gateway instances' UDP ports, read when a packet is sent. */
  readonly instances: readonly { readonly udpPort: number }[];
  /** The legitimate devices, whose sessions the attacks aim at. */
  readonly legit: readonly SimulatedDevice[];
  /** Hostile packets and messages per second, on average. */
  readonly packetsPerSecond: number;
}

/** What was sent, by kind, and what the attacks achieved (all but `sent` must stay 0 or be refused). */
export class HostileTally {
  readonly sent: Record<string, number> = {};
  takeoverRefused = 0;
  takeoverAccepted = 0;
  /** Downstream datagrams that reached the hijacker's sockets (must stay 0). */
  hijackerHeard = 0;

  count(kind: string, n = 1): void {
    this.sent[kind] = (this.sent[kind] ?? 0) + n;
  }

  get total(): number {
    return Object.values(this.sent).reduce((a, b) => a + b, 0);
  }
}

export interface HostileTraffic {
  readonly tally: HostileTally;
  stop(): Promise<void>;
}

async function udpFromAddress(address: string, sockets: Socket[]): Promise<Socket> {
  const s = createSocket("udp4");
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(0, process.platform === "linux" ? address : "127.0.0.1", () => resolve());
  });
  sockets.push(s);
  return s;
}

function pick<T>(list: readonly T[]): T {
  return list[randomInt(list.length)] as T;
}

/** A live legitimate device with its audio channel. */
function victimOf(legit: readonly SimulatedDevice[]): SimulatedDevice | undefined {
  for (let tries = 0; tries < 5; tries++) {
    const d = pick(legit);
    if (d.session) return d;
  }
  return undefined;
}

/**
 * Starts every kind of hostile traffic against `target`; `stop()` ends it and releases
 * its sockets and devices. What was sent, and what the attacks achieved, are in `tally`.
 */
export async function startHostileTraffic(target: HostileTarget): Promise<HostileTraffic> {
  const { legit, instances, signingKey } = target;
  const brokerUrl = target.brokerUrl;
  const tally = new HostileTally();
  const countHostile = (kind: string, n = 1) => tally.count(kind, n);
  const victim = () => victimOf(legit);
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const hostileDevices: SimulatedDevice[] = [];
  const udpFrom = (address: string) => udpFromAddress(address, sockets);
  const stop = async () => {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.close();
    await Promise.all(hostileDevices.map((d) => d.close()));
  };
  try {
    const garbage = await udpFrom("127.1.0.2");
    const replayer = await udpFrom("127.1.0.3");
    const spoofer = await udpFrom("127.1.0.4");
    for (let k = 0; k < 4; k++) {
      const d = new SimulatedDevice({
        brokerUrl,
        index: 900_000 + k,
        signingKey,
      });
      await d.connect();
      await d.hello().catch(() => {});
      hostileDevices.push(d);
    }
    const silence = upstreamClip(1, 6).silence;
    const hijackers = await Promise.all([0, 1, 2, 3].map(() => udpFrom("127.1.0.5")));
    for (const h of hijackers) h.on("message", () => tally.hijackerHeard++);

    const kinds: [number, () => void][] = [
      [
        30,
        () => {
          const d = randomBytes(randomInt(0, 1500));
          garbage.send(d, pick(instances).udpPort, "127.0.0.1");
          countHostile("udp_garbage");
        },
      ],
      [
        20,
        () => {
          const v = victim();
          const s = v?.session;
          if (!v || !s) return;
          const seq = Math.max(1, v.stats.framesSent - randomInt(0, 100));
          const d = sealAudioPacket(
            s.key,
            { connectionId: s.nonce.readUInt32BE(4), timestamp: 0, sequence: seq },
            silence,
          );
          replayer.send(d, s.port, s.server);
          countHostile("udp_replay");
        },
      ],
      [
        20,
        () => {
          const v = victim();
          const s = v?.session;
          if (!v || !s) return;
          // The right connection id and a newer sequence, but no key: a random payload.
          const payload = randomBytes(randomInt(20, 120));
          const d = Buffer.alloc(UDP_HEADER_BYTES + payload.length);
          writeUdpHeader(d, {
            payloadLength: payload.length,
            connectionId: s.nonce.readUInt32BE(4),
            timestamp: 0,
            sequence: v.stats.framesSent + randomInt(1, 40),
          });
          payload.copy(d, UDP_HEADER_BYTES);
          spoofer.send(d, s.port, s.server);
          countHostile("udp_spoofed_connection_id");
        },
      ],
      [
        30,
        () => {
          const h = pick(hostileDevices);
          const other = victim()?.session?.sessionId ?? "1-abcdef12-0123456789abcdef";
          const messages: [string, string][] = [
            ["mqtt_malformed", "{type: listen"],
            ["mqtt_malformed", randomBytes(randomInt(1, 200)).toString("latin1")],
            ["mqtt_not_object", pick(["[1,2,3]", "42", "null", '"hello"'])],
            ["mqtt_unknown_type", JSON.stringify({ type: "iot", session_id: other })],
            ["mqtt_oversized", JSON.stringify({ type: "listen", state: "detect", text: "x".repeat(9000) })],
            ["mqtt_bad_hello", JSON.stringify({ type: "hello", version: 2, transport: "udp" })],
            [
              "mqtt_other_session",
              JSON.stringify({ type: "listen", state: "start", mode: "auto", session_id: other }),
            ],
            ["mqtt_other_session", JSON.stringify({ type: "abort", session_id: other })],
            ["mqtt_other_session", JSON.stringify({ type: "goodbye", session_id: other })],
          ];
          const [kind, payload] = pick(messages);
          h.publishRaw(payload);
          countHostile(kind);
        },
      ],
    ];
    const totalWeight = kinds.reduce((a, [w]) => a + w, 0);
    const sendOne = () => {
      let r = randomInt(totalWeight);
      for (const [w, send] of kinds) {
        if (r < w) return send();
        r -= w;
      }
    };

    // The hostile budget: packetsPerSecond (the soak: --hostile times the devices' packet rate).
    const perSecond = target.packetsPerSecond;
    let owed = 0;
    timers.push(
      setInterval(() => {
        owed += perSecond / 10;
        for (; owed >= 1; owed--) sendOne();
      }, 100),
    );

    // Hello floods from an authenticated hostile device.
    const hello = JSON.stringify(firmwareHello());
    timers.push(
      setInterval(() => {
        const h = pick(hostileDevices);
        for (let i = 0; i < 200; i++) h.publishRaw(hello);
        countHostile("mqtt_hello_flood", 200);
      }, 5000),
    );

    // The UDP hijack attempt: every byte value as a 1-byte payload, far ahead and just ahead.
    timers.push(
      setInterval(() => {
        const v = victim();
        const s = v?.session;
        if (!v || !s) return;
        const seen = v.stats.framesSent;
        let n = 0;
        for (const seq of [seen + 2000, seen + 1]) {
          for (let b = 0; b < 256; b++) {
            const d = Buffer.alloc(UDP_HEADER_BYTES + 1);
            writeUdpHeader(d, {
              payloadLength: 1,
              connectionId: s.nonce.readUInt32BE(4),
              timestamp: 0,
              sequence: seq,
            });
            d[UDP_HEADER_BYTES] = b;
            (hijackers[n++ % hijackers.length] as Socket).send(d, s.port, s.server);
          }
        }
        countHostile("udp_hijack_attempt", n);
      }, 10_000),
    );

    // Takeover attempts: a live device's client id with a wrong password.
    timers.push(
      setInterval(() => {
        const v = victim();
        if (!v) return;
        countHostile("mqtt_takeover_attempt");
        const c = mqtt.connect(brokerUrl, {
          clientId: v.clientId,
          username: Buffer.from('{"ip":"203.0.113.66"}').toString("base64"),
          password: randomBytes(32).toString("base64"),
          reconnectPeriod: 0,
          connectTimeout: 5000,
        });
        c.once("connect", () => {
          tally.takeoverAccepted++;
          c.end(true);
        });
        c.once("error", () => {
          tally.takeoverRefused++;
          c.end(true);
        });
      }, 5000),
    );

    return { tally, stop };
  } catch (err) {
    // Half started: release what was made, then say why.
    await stop();
    throw err;
  }
}
