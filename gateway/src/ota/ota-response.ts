/**
 * The OTA answer a device gets before it ever speaks MQTT (docs/device-protocol.md
 * section 1): pure, no I/O. The HTTP side (ota-server.ts) hands in the method, the
 * headers, the body it read and the peer address; this module validates them once and
 * builds the JSON document firmware parses.
 *
 * This is the local box's development OTA. In production the manager-api answers the
 * same request; docs/runbook.md says what it must return. Both sign the MQTT password
 * with `deviceSignature` (auth/device-credentials.ts), the very function the verifier
 * and the local broker check it with, so the three cannot drift apart.
 */
import { deviceSignature } from "../auth/device-credentials.ts";
import { replyTopic } from "../protocol/topics.ts";

/** Firmware's system-info body is 1 to 3 KB; anything near this is not firmware. */
export const MAX_OTA_BODY_BYTES = 16 * 1024;
/** The topic every device message goes to (broker contract rule 1). */
export const PUBLISH_TOPIC = "device-server";
/** xinnan's default group: the first part of the client id. */
export const DEFAULT_GROUP = "GID_default";

export interface OtaSettings {
  /** `host:port` of the MQTT broker the device must use; port 8883 makes firmware use TLS. */
  readonly mqttEndpoint: string;
  /** The HMAC key, used as its raw bytes (like MQTT_SIGNING_KEY everywhere else). */
  readonly signingKey: string;
  /** Default DEFAULT_GROUP. */
  readonly group?: string;
  /** Minutes east of UTC that firmware adds to `server_time.timestamp`; default 0 (UTC). */
  readonly timezoneOffsetMinutes?: number;
}

export interface OtaRequest {
  readonly method: string;
  /** Node's header map: lowercase names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  /** The TCP peer as Node reports it (`::ffff:1.2.3.4` for IPv4 on a dual-stack socket). */
  readonly remoteAddress: string | undefined;
}

export type OtaRefusal =
  | "method_not_allowed"
  | "body_too_large"
  | "missing_device_id"
  | "bad_device_id"
  | "bad_client_id"
  | "bad_body"
  | "mac_mismatch";

export interface OtaMqttSection {
  readonly endpoint: string;
  readonly client_id: string;
  readonly username: string;
  readonly password: string;
  readonly publish_topic: string;
  readonly subscribe_topic: string;
}

export interface OtaDocument {
  readonly server_time: { readonly timestamp: number; readonly timezone_offset: number };
  readonly mqtt: OtaMqttSection;
}

export type OtaAnswer =
  | {
      readonly ok: true;
      readonly status: 200;
      readonly body: OtaDocument;
      /** Lowercase colon MAC, for the caller's log line. */
      readonly mac: string;
    }
  | {
      readonly ok: false;
      readonly status: 200 | 405 | 413;
      readonly body: { readonly error: string };
      readonly refusal: OtaRefusal;
    };

/**
 * The error texts are xinnan manager-api's (OTAController), and so is the status: bad
 * device input is answered 200 with `{"error": ...}`, which firmware parses as a document
 * with no sections, so it keeps the settings it had and tries again at its next boot.
 * The two refusals firmware can never cause (another method, a huge body) get the HTTP
 * status that says so, with the same body shape.
 */
const ERRORS: Record<OtaRefusal, { status: 200 | 405 | 413; error: string }> = {
  method_not_allowed: { status: 405, error: "Method not allowed: use POST (or GET without a body)" },
  body_too_large: { status: 413, error: `Request body over ${MAX_OTA_BODY_BYTES} bytes` },
  missing_device_id: { status: 200, error: "Device ID is required" },
  bad_device_id: { status: 200, error: "Invalid OTA request" },
  bad_client_id: { status: 200, error: "Invalid OTA request" },
  bad_body: { status: 200, error: "Invalid OTA request" },
  mac_mismatch: { status: 200, error: "Invalid OTA request" },
};

export function refuseOta(refusal: OtaRefusal): OtaAnswer {
  const { status, error } = ERRORS[refusal];
  return { ok: false, status, body: { error }, refusal };
}

/** Firmware sends the Wi-Fi MAC, lowercase and colon-separated; case is normalised. */
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
/**
 * The board UUID (firmware) or any short id of one topic-level-safe token: it becomes the
 * client id's third part, so no `@`, `/`, `+`, `#` or NUL can get in.
 */
const CLIENT_ID = /^[0-9A-Za-z._-]{1,64}$/;

export function answerOta(request: OtaRequest, settings: OtaSettings, nowMs: number): OtaAnswer {
  // Firmware uses GET only when it has no system info to send (docs/device-protocol.md 1.1).
  if (request.method !== "POST" && request.method !== "GET") return refuseOta("method_not_allowed");
  if (request.body.length > MAX_OTA_BODY_BYTES) return refuseOta("body_too_large");

  const deviceId = header(request, "device-id");
  if (deviceId === undefined || deviceId.trim() === "") return refuseOta("missing_device_id");
  if (!MAC.test(deviceId)) return refuseOta("bad_device_id");
  const mac = deviceId.toLowerCase();
  const macUnderscored = mac.replaceAll(":", "_");

  // A missing Client-Id defaults to the Device-Id, as in xinnan's manager-api.
  const clientIdHeader = header(request, "client-id");
  const third = clientIdHeader === undefined || clientIdHeader === "" ? macUnderscored : clientIdHeader;
  if (!CLIENT_ID.test(third)) return refuseOta("bad_client_id");

  if (request.body.length > 0) {
    const body = parseJsonObject(request.body);
    if (body === undefined) return refuseOta("bad_body");
    // xinnan refuses a body whose MAC differs from the header; so do we (when present:
    // reduced clients such as the Bunny test client leave it out).
    const bodyMac = body.mac_address;
    if (bodyMac !== undefined && (typeof bodyMac !== "string" || bodyMac.toLowerCase() !== mac))
      return refuseOta("mac_mismatch");
  }

  const clientId = `${settings.group ?? DEFAULT_GROUP}@@@${macUnderscored}@@@${third}`;
  const username = Buffer.from(JSON.stringify({ ip: peerIp(request.remoteAddress) }), "utf8").toString(
    "base64",
  );
  return {
    ok: true,
    status: 200,
    mac,
    body: {
      server_time: { timestamp: nowMs, timezone_offset: settings.timezoneOffsetMinutes ?? 0 },
      // No `firmware` (no upgrade offered), no `websocket` (so firmware picks MQTT), no
      // `activation` (the device counts as activated), no `keepalive` (firmware uses 240 s).
      mqtt: {
        endpoint: settings.mqttEndpoint,
        client_id: clientId,
        username,
        password: deviceSignature(settings.signingKey, clientId, username),
        publish_topic: PUBLISH_TOPIC,
        // Only old firmware subscribes, and the broker's ACL lets a device subscribe to
        // exactly this topic (broker contract rules 3 and 8), so it causes no refusal.
        subscribe_topic: replyTopic(clientId),
      },
    },
  };
}

function header(request: OtaRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The address the manager-api puts in the username: the peer, IPv4-mapped prefix removed. */
function peerIp(remote: string | undefined): string {
  if (remote === undefined) return "";
  return remote.startsWith("::ffff:") ? remote.slice("::ffff:".length) : remote;
}

/**
 * How firmware reads `endpoint` (docs/device-protocol.md 1.4): split at the first `:`; no port
 * means 8883; 8883 means MQTT over TLS, anything else plain TCP.
 */
export function endpointToUrl(endpoint: string): string {
  const colon = endpoint.indexOf(":");
  const host = colon < 0 ? endpoint : endpoint.slice(0, colon);
  const port = colon < 0 ? 8883 : Number(endpoint.slice(colon + 1));
  if (host === "" || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new RangeError(`not an MQTT endpoint: ${JSON.stringify(endpoint)}`);
  return `${port === 8883 ? "mqtts" : "mqtt"}://${host}:${port}`;
}
