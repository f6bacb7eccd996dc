/**
 * What every process of the gateway bundle (the gateways, the device verifier) does at its
 * start and stop, written once: a bad configuration exits 2 naming the variable (PM2 and
 * systemd show it; 1 is kept for failures after the configuration was read), a stray
 * rejection is logged rather than fatal, and a stop is asked for by SIGINT, SIGTERM or PM2's
 * "shutdown" message (sent instead of a signal on some platforms), acted on once.
 */
import { ConfigError } from "../env.ts";
import type { Logger } from "./log.ts";

/** The configuration `read` returns, or exit 2 with its ConfigError on stderr. */
export function configOrExit<T>(app: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${app}: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export function logUnhandledRejections(log: Logger): void {
  process.on("unhandledRejection", (reason) => log.error({ err: String(reason) }, "unhandled rejection"));
}

/** Calls `stop` with what asked for it, the first time only. */
export function onStopRequest(stop: (signal: string) => void): void {
  let stopping = false;
  const once = (signal: string) => {
    if (stopping) return;
    stopping = true;
    stop(signal);
  };
  process.on("SIGINT", () => once("SIGINT"));
  process.on("SIGTERM", () => once("SIGTERM"));
  process.on("message", (msg) => {
    if (msg === "shutdown") once("shutdown");
  });
}
