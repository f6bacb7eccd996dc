/**
 * Who a simulated device is on the network: its MAC (the client id and OTA request are
 * built from it) and the loopback address its UDP socket binds to.
 */

/**
 * A distinct loopback address per device index (127.0.x.y) on Linux, where all of
 * 127.0.0.0/8 is local; undefined elsewhere (the kernel's choice, 127.0.0.1).
 */
export function loopbackAddress(index: number): string | undefined {
  if (process.platform !== "linux") return undefined;
  const n = 10 + (index % 60_000);
  return `127.0.${(n >> 8) & 255}.${n & 255}`;
}

/** The MAC a simulated device of this index uses: locally administered, lowercase. */
export function simulatedMac(index: number): string {
  return [
    "02",
    "00",
    ((index >> 16) & 0xff).toString(16).padStart(2, "0"),
    ((index >> 8) & 0xff).toString(16).padStart(2, "0"),
    (index & 0xff).toString(16).padStart(2, "0"),
    "01",
  ].join(":");
}
