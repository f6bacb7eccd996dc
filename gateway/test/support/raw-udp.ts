/**
 * UDP datagrams with a source port no ordinary socket can have: binding port 0 picks a free
 * port, so a datagram *from* port 0 needs a raw socket. Node has none; python3 (which the
 * test machine has for the agents' venv) opens one. A raw socket needs root (CAP_NET_RAW).
 * IPv4 only: the kernel writes the IP header, we write the UDP header, with checksum 0
 * (IPv4's "no checksum").
 */
import { spawnSync } from "node:child_process";

/** Why the tests that need a raw socket cannot run here, or false when they can. */
export const rawUdpUnavailable: string | false =
  process.getuid?.() === 0 ? false : "needs root: only a raw socket sends from source port 0";

const SENDER = `
import socket, struct, sys
src, dst, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for line in sys.stdin:
    payload = bytes.fromhex(line.strip())
    s.sendto(struct.pack("!HHHH", src, port, 8 + len(payload), 0) + payload, (dst, 0))
`;

/** Sends each datagram from `sourcePort` to `to`; returns once all are handed to the kernel. */
export function sendRawUdp(
  datagrams: readonly Buffer[],
  sourcePort: number,
  to: { readonly address: string; readonly port: number },
): void {
  const res = spawnSync("python3", ["-c", SENDER, String(sourcePort), to.address, String(to.port)], {
    input: datagrams.map((d) => `${d.toString("hex")}\n`).join(""),
    encoding: "utf8",
    timeout: 10_000,
  });
  if (res.error || res.status !== 0) {
    throw new Error(
      `raw UDP sender failed: ${res.error?.message ?? `exit ${res.status}`} ${res.stderr ?? ""}`,
    );
  }
}
