/**
 * Provisioning as firmware does it (docs/device-protocol.md section 1): POST the system
 * info to the OTA URL with the `Device-Id` / `Client-Id` headers, and take the MQTT
 * settings from the answer's `mqtt` section. The simulated devices of the local box and
 * the tests go through this, so the OTA path runs on every `npm start`.
 */
import { createHash } from "node:crypto";
import { endpointToUrl } from "../../gateway/src/ota/ota-response.ts";
import { type DeviceOptions, SimulatedDevice } from "./device.ts";
import { simulatedMac } from "./device-identity.ts";

export interface ProvisionRequest {
  readonly otaUrl: string;
  /** Lowercase colon MAC, as firmware sends it. */
  readonly mac: string;
  /** The board UUID (firmware keeps one in NVS). */
  readonly uuid: string;
  readonly firmwareVersion?: string;
  readonly boardType?: string;
  readonly timeoutMs?: number;
}

export interface Provisioned {
  /** `mqtt://host:port`, or `mqtts://` when the endpoint's port is 8883 (as firmware decides). */
  readonly brokerUrl: string;
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
  readonly publishTopic: string;
  readonly subscribeTopic: string | undefined;
  readonly serverTimeMs: number | undefined;
  /** The whole answer as it came (firmware stores every key of `mqtt`), to check what a device was told. */
  readonly document: Readonly<Record<string, unknown>>;
}

/** The headers and body current firmware sends (Ota::CheckVersion, Board::GetSystemInfoJson). */
export function firmwareOtaRequest(req: ProvisionRequest): { headers: Record<string, string>; body: string } {
  const version = req.firmwareVersion ?? "1.9.4";
  const board = req.boardType ?? "bread-compact-wifi";
  return {
    headers: {
      "Device-Id": req.mac,
      "Client-Id": req.uuid,
      "User-Agent": `${board}/${version}`,
      "Accept-Language": "en-US",
      "Activation-Version": "1",
      "Content-Type": "application/json",
    },
    body: JSON.stringify({
      version: 2,
      language: "en-US",
      flash_size: 16777216,
      minimum_free_heap_size: "8318916",
      mac_address: req.mac,
      uuid: req.uuid,
      chip_model_name: "esp32s3",
      chip_info: { model: 9, cores: 2, revision: 2, features: 18 },
      application: {
        name: "xiaozhi",
        version,
        compile_time: "Jan 1 2026T00:00:00Z",
        idf_version: "v5.4.1",
        elf_sha256: "0".repeat(64),
      },
      partition_table: [
        { label: "nvs", type: 1, subtype: 2, address: 36864, size: 16384 },
        { label: "ota_0", type: 0, subtype: 16, address: 1048576, size: 6291456 },
      ],
      ota: { label: "ota_0" },
      board: { type: board, ssid: "lab", rssi: -50, channel: 6, ip: "127.0.0.1", mac: req.mac },
    }),
  };
}

export async function provision(req: ProvisionRequest): Promise<Provisioned> {
  const { headers, body } = firmwareOtaRequest(req);
  const res = await fetch(req.otaUrl, {
    method: "POST",
    headers,
    body,
    signal: AbortSignal.timeout(req.timeoutMs ?? 10_000),
  });
  // Firmware refuses anything but 200.
  if (res.status !== 200) throw new Error(`OTA answered HTTP ${res.status}: ${await res.text()}`);
  const doc = (await res.json()) as unknown;
  if (typeof doc !== "object" || doc === null) throw new Error("OTA answer is not a JSON object");
  const document = doc as Record<string, unknown>;
  const { mqtt, error, server_time } = document;
  if (typeof error === "string") throw new Error(`OTA refused the device: ${error}`);
  if (typeof mqtt !== "object" || mqtt === null) throw new Error("OTA answer has no mqtt section");
  const m = mqtt as Record<string, unknown>;
  const str = (key: string): string => {
    const v = m[key];
    if (typeof v !== "string" || v === "") throw new Error(`OTA mqtt section lacks ${key}`);
    return v;
  };
  const time = (server_time as Record<string, unknown> | undefined)?.timestamp;
  return {
    brokerUrl: endpointToUrl(str("endpoint")),
    clientId: str("client_id"),
    username: str("username"),
    password: str("password"),
    publishTopic: str("publish_topic"),
    subscribeTopic: typeof m.subscribe_topic === "string" ? m.subscribe_topic : undefined,
    serverTimeMs: typeof time === "number" ? time : undefined,
    document,
  };
}

/**
 * A simulated device that got its MQTT settings from the OTA, as firmware does at boot:
 * its MAC from its index, a board UUID stable per MAC (firmware keeps one in NVS).
 */
export async function provisionDevice(
  options: { readonly otaUrl: string; readonly index: number } & Partial<DeviceOptions>,
): Promise<SimulatedDevice> {
  const mac = options.mac ?? simulatedMac(options.index);
  const p = await provision({ otaUrl: options.otaUrl, mac, uuid: boardUuid(mac) });
  return provisionedDevice(p, { ...options, mac });
}

/** The device that connects with what the OTA answered (`p`), and nothing else of its own. */
export function provisionedDevice(
  p: Provisioned,
  options: { readonly mac: string } & Partial<DeviceOptions>,
): SimulatedDevice {
  return new SimulatedDevice({
    ...options,
    brokerUrl: p.brokerUrl,
    clientId: p.clientId,
    credentials: { username: p.username, password: p.password },
  });
}

/** A v4-shaped UUID derived from the MAC, so a simulated board keeps its id across runs. */
export function boardUuid(mac: string): string {
  const h = createHash("sha256").update(mac).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
