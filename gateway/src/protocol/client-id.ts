/**
 * The MQTT client id the OTA issues: `GROUP@@@MAC_UNDERSCORED@@@UUID_OR_MAC`, or the legacy
 * two-part `GROUP@@@MAC_UNDERSCORED` (docs/device-protocol.md section 2.2).
 */

export interface DeviceClientId {
  readonly raw: string;
  readonly group: string;
  /** Lowercase, colon-separated: `a0:85:e3:f4:49:34`. */
  readonly mac: string;
  /** The third part (UUID or MAC again); undefined for the legacy two-part form. */
  readonly uuid: string | undefined;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export type ClientIdError = "bad_format" | "bad_mac";

export function parseDeviceClientId(
  raw: string,
): { ok: true; id: DeviceClientId } | { ok: false; reason: ClientIdError } {
  const parts = raw.split("@@@");
  if (parts.length !== 2 && parts.length !== 3) return { ok: false, reason: "bad_format" };
  const [group, macPart, uuid] = parts as [string, string, string | undefined];
  if (group.length === 0 || macPart.length === 0) return { ok: false, reason: "bad_format" };
  const mac = macPart.replaceAll("_", ":");
  // Firmware sends the MAC in lowercase; the reference gateways refuse anything else.
  if (!MAC.test(mac)) return { ok: false, reason: "bad_mac" };
  if (uuid !== undefined && uuid.length === 0) return { ok: false, reason: "bad_format" };
  return { ok: true, id: { raw, group, mac, uuid } };
}
