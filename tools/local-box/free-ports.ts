/**
 * Before the local box starts anything: every address and port it will listen on must be
 * free and on this machine. Without this check a port held by something else (another
 * box with another --run-dir, a test's box, any program) showed up late and unnamed: the
 * broker "exited with code 1 before listening", a held gateway UDP port made the box wait
 * 30 s for "gateway at http://127.0.0.1:9001 not ready", a held verifier port crash-looped
 * the verifier unseen, and health ports held by another box's gateways answered the box's
 * readiness check, so it printed "4 gateway instances ready" for gateways that were not its
 * own. The check binds each one briefly; whatever it finds is reported at once, together.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import type { InstancePorts } from "../../deploy/ecosystem.ts";

/** The verifier's port (PM2 app device-auth: gateway/src/auth/verifier-config.ts). */
export const VERIFIER_PORT = 9100;
/** Where the gateways' health and the verifier listen (HEALTH_BIND's default). */
const LOOPBACK = "127.0.0.1";

export interface BoxPort {
  /** What listens there, for the message. */
  readonly what: string;
  readonly protocol: "tcp" | "udp";
  readonly host: string;
  readonly port: number;
}

/** Every port the box listens on, in the order it starts them. */
export function boxPorts(options: {
  readonly publicHost: string;
  readonly brokerPort: number;
  readonly otaPort: number;
  readonly instances: readonly InstancePorts[];
}): BoxPort[] {
  const { publicHost } = options;
  return [
    { what: "broker (--broker-port)", protocol: "tcp", host: publicHost, port: options.brokerPort },
    ...options.instances.flatMap((p): BoxPort[] => [
      { what: `gateway-${p.instanceId} UDP`, protocol: "udp", host: publicHost, port: p.udpPort },
      { what: `gateway-${p.instanceId} health`, protocol: "tcp", host: LOOPBACK, port: p.healthPort },
    ]),
    { what: "device verifier", protocol: "tcp", host: LOOPBACK, port: VERIFIER_PORT },
    { what: "OTA (--ota-port)", protocol: "tcp", host: publicHost, port: options.otaPort },
  ];
}

/**
 * Throws one error naming every port of `ports` that cannot be listened on, and why
 * (in use; --public-host not an address of this machine, or not resolving).
 */
export async function assertPortsFree(ports: readonly BoxPort[]): Promise<void> {
  const problems: string[] = [];
  for (const p of ports) {
    const code = await bindError(p);
    if (code === undefined) continue;
    const where = `${p.host}:${p.port}/${p.protocol}`;
    if (code === "EADDRINUSE") problems.push(`${where} (${p.what}) is in use`);
    else if (code === "EADDRNOTAVAIL")
      problems.push(`${where} (${p.what}): ${p.host} is not an address of this machine`);
    else if (code === "ENOTFOUND" || code === "EAI_AGAIN")
      problems.push(`${where} (${p.what}): ${p.host} does not resolve`);
    else problems.push(`${where} (${p.what}): ${code}`);
  }
  if (problems.length === 0) return;
  throw new Error(
    [
      "cannot listen where the box must (nothing was started):",
      ...problems.map((p) => `  ${p}`),
      "Another local box (npm stop, with its --run-dir) or another program holds them; --broker-port and --ota-port move those two, the gateways' and the verifier's ports are fixed (deploy/ecosystem.ts). --public-host must be an address of this machine.",
    ].join("\n"),
  );
}

/** The error code binding `p` gives, undefined if it could be bound (and is free again). */
function bindError(p: BoxPort): Promise<string | undefined> {
  return new Promise((resolve) => {
    const fail = (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message);
    if (p.protocol === "udp") {
      const socket = createSocket("udp4");
      socket.once("error", (err) => {
        try {
          socket.close();
        } catch {
          // never bound: nothing to close
        }
        fail(err);
      });
      socket.bind(p.port, p.host, () => socket.close(() => resolve(undefined)));
      return;
    }
    const server = createServer();
    server.once("error", fail);
    server.listen(p.port, p.host, () => server.close(() => resolve(undefined)));
  });
}
