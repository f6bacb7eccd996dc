/**
 * A simulated device's MQTT control channel (docs/device-protocol.md, section 2), as
 * current firmware opens it: credentials from the OTA (or derived as the OTA would sign
 * them), no SUBSCRIBE (the broker subscribes the device), every message published to
 * `device-server` at QoS 0, and only JSON objects with a string `type` taken in. What the
 * messages mean is the device's business (device.ts).
 */
import { createHmac } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import type { DeviceMessage } from "./hello-reply.ts";

export interface ControlChannelOptions {
  readonly brokerUrl: string;
  readonly clientId: string;
  /** With the OTA signing key, the device presents signed credentials (docs/device-protocol.md 1.3). */
  readonly signingKey?: string | undefined;
  /** Username and password exactly as an OTA issued them (provision.ts); wins over signingKey. */
  readonly credentials?: { readonly username: string; readonly password: string } | undefined;
  /**
   * For an `mqtts://` broker URL: the CA certificates (PEM) the broker's certificate must
   * chain to. Firmware verifies against its built-in public CA bundle; tests pass their own
   * CA. Without it, Node's public roots are used (and a test CA is refused, as firmware would).
   */
  readonly ca?: string | Buffer | undefined;
  /** Every message from the server that firmware would take in, parsed. */
  readonly onMessage: (message: DeviceMessage) => void;
  /** The connection closed, after it was up. */
  readonly onClosed: () => void;
}

export class ControlChannel {
  readonly #client: MqttClient;
  readonly #connected: Promise<void>;

  /** Starts connecting at once; `connected()` says how that went. */
  constructor(options: ControlChannelOptions) {
    const username =
      options.credentials?.username ?? Buffer.from(JSON.stringify({ ip: "127.0.0.1" })).toString("base64");
    const password =
      options.credentials?.password ??
      (options.signingKey
        ? createHmac("sha256", options.signingKey).update(`${options.clientId}|${username}`).digest("base64")
        : "unsigned");
    const client = mqtt.connect(options.brokerUrl, {
      clientId: options.clientId,
      username,
      password,
      clean: true,
      keepalive: 240,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      rejectUnauthorized: true,
    });
    this.#client = client;
    client.on("message", (_topic, payload) => {
      const message = parseServerMessage(payload);
      if (message) options.onMessage(message);
    });
    this.#connected = new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
      client.once("close", () => reject(new Error("connection closed before CONNACK")));
    }).then(() => {
      client.removeAllListeners("error");
      client.on("error", () => {});
      client.on("close", () => options.onClosed());
    });
  }

  /** Resolves on the broker's CONNACK; rejects if the connection failed or closed before it. */
  connected(): Promise<void> {
    return this.#connected;
  }

  /** Publishes any payload to `device-server`, as the firmware does. */
  publish(payload: string | Buffer): void {
    this.#client.publish("device-server", payload, { qos: 0 });
  }

  /** Ends the connection (DISCONNECT if it is up). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#client.end(true, {}, () => resolve()));
  }

  /** Drops the connection without DISCONNECT (power loss, network gone). */
  async vanish(): Promise<void> {
    (this.#client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
    await this.close();
  }
}

/** Firmware drops non-JSON, and messages without a string type. */
function parseServerMessage(payload: Buffer): DeviceMessage | undefined {
  let message: DeviceMessage;
  try {
    message = JSON.parse(payload.toString("utf8")) as DeviceMessage;
  } catch {
    return undefined;
  }
  return typeof message.type === "string" ? message : undefined;
}
