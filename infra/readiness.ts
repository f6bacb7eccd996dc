/**
 * The readiness signal the reserved IP waits for. On a new gateway droplet (first `up`, a
 * `--replace`, a changed user data) the reserved IP must not move before the new box can
 * serve devices, so stack.ts registers the ReservedIpAssignment only after this probe saw
 * the new droplet ready; until then the old droplet (if any) keeps the address and serves.
 *
 * The signal: the droplet's MQTT device listener accepts a TCP connection on the droplet's
 * own public address. First boot opens that listener only once the device verifier and
 * every gateway instance answer (cloud-init/gateway/bootstrap.sh); before that, nothing on
 * the box accepts devices. Port 1883 is open to everyone in the gateway firewall, so the
 * machine that runs `pulumi up` reaches it with no extra rule.
 *
 * I/O is thin: the decision (keep waiting, give up) is a loop over an injected clock.
 */
import { connect } from "node:net";

/** Resolves when the droplet at `host` is ready; rejects (naming what to check) when it never is. */
export type GatewayReadiness = (host: string) => Promise<void>;

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface TcpReadinessOptions {
  /** Device listener ports; ready when any of them accepts (1883, or 8883 when only TLS is open). */
  readonly ports: readonly number[];
  /** Give up after this long (first boot installs Docker, EMQX, Node and builds the bundle's addons). */
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly connectTimeoutMs?: number;
  readonly clock?: Clock;
  /** Progress lines (pulumi.log.info under `pulumi up`). */
  readonly log?: (line: string) => void;
}

export const DEVICE_PORTS = [1883, 8883] as const;

export function tcpReadiness(o: TcpReadinessOptions): GatewayReadiness {
  const clock = o.clock ?? REAL_CLOCK;
  const interval = o.intervalMs ?? 10_000;
  const connectTimeout = o.connectTimeoutMs ?? 3_000;
  return async (host) => {
    const started = clock.now();
    let attempts = 0;
    for (;;) {
      attempts++;
      for (const port of o.ports) {
        if (await accepts(host, port, connectTimeout)) {
          o.log?.(`gateway ${host}: port ${port} accepts devices after ${secondsSince(clock, started)} s`);
          return;
        }
      }
      if (clock.now() - started >= o.timeoutMs) {
        throw new Error(
          `gateway ${host} did not open its device listener (TCP ${o.ports.join(" or ")}) within ` +
            `${Math.round(o.timeoutMs / 60_000)} min (${attempts} attempts): the reserved IP stays where it is. ` +
            `Check its first boot: ssh root@${host} 'cloud-init status --long; tail -n 50 /var/log/cloud-init-output.log'`,
        );
      }
      if (attempts === 1 || attempts % 6 === 0) {
        o.log?.(
          `gateway ${host}: waiting for first boot to open the device listener (${secondsSince(clock, started)} s)`,
        );
      }
      await clock.sleep(interval);
    }
  };
}

function secondsSince(clock: Clock, t: number): number {
  return Math.round((clock.now() - t) / 1000);
}

/** One TCP connect attempt; true when the handshake completes. */
function accepts(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
