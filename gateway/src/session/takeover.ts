/**
 * A device's MQTT connection taken over by a new one with the same client id (the device
 * rebooted, or its Wi-Fi dropped and it reconnected before the broker noticed the old TCP
 * connection dead): which session of this instance the broker's event ends. Pure.
 *
 * The firmware closes its audio channel when its MQTT connection drops
 * (docs/device-protocol.md, 6.1), so a session opened by a hello of the old connection is
 * over for the device. The event does not say which hellos came on which connection, and
 * it can reach us after the new connection's first hello (the broker publishes it from
 * the old connection's teardown, which runs beside the new connection: mochi's OnDisconnect
 * hook, EMQX's client_disconnected rule). So a session whose hello arrived shortly before
 * the event may be the new connection's and is kept (docs/reliability.md, rule 3, "Takeovers").
 */

/**
 * A session whose hello arrived less than this before the takeover event is kept. The
 * event lags the new connection by a few milliseconds (mochi waits up to 1 s for its
 * takeover mark), while a device says hello only after its new connection is up.
 */
export const TAKEOVER_GRACE_MS = 2000;

/** The broker's disconnect reasons that mean a newer connection replaced the old one. */
export function isTakeover(reason: string | undefined): boolean {
  // EMQX says "discarded" when the new connection starts clean (the firmware's), "takenover"
  // when it resumes the session; the local broker says "takenover".
  return reason === "takenover" || reason === "discarded";
}

/** The session whose hello arrived at `helloAt` is the old connection's (epoch ms). */
export function openedBeforeTakeover(helloAt: number, eventAt: number, graceMs = TAKEOVER_GRACE_MS): boolean {
  return eventAt - helloAt >= graceMs;
}
