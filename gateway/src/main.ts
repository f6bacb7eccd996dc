/**
 * The gateway process: one instance (PM2 runs several). Config errors exit 2 with the
 * variable named; SIGINT/SIGTERM drain (goodbye to every device) and exit 0.
 */
import { startGateway } from "./app.ts";
import { ConfigError, describeConfig, loadEnv, parseConfig } from "./config.ts";
import { createLogger } from "./ops/log.ts";
import { startWatchdog } from "./ops/watchdog.ts";

async function main(): Promise<void> {
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(loadEnv());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gateway: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, config.instanceId);
  log.info({ config: describeConfig(config) }, "starting");
  process.on("unhandledRejection", (reason) => log.error({ err: String(reason) }, "unhandled rejection"));
  let running: Awaited<ReturnType<typeof startGateway>>;
  try {
    running = await startGateway(config, { log });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, "gateway failed to start");
    process.exit(1);
  }
  // After the start (its synchronous loading is not a stall).
  startWatchdog(config.watchdogStallMs);
  // PM2 (wait_ready) starts the next instance of a reload only after this.
  process.send?.("ready");
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, sessions: running.gateway.sessions.size }, "draining");
    const deadline = setTimeout(() => {
      log.error("drain timed out; exiting anyway");
      process.exit(1);
    }, config.drainTimeoutMs);
    running.drain().then(
      () => {
        clearTimeout(deadline);
        log.info("drained; bye");
        process.exit(0);
      },
      (err: Error) => {
        log.error({ err: err.message }, "drain failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // PM2 on some platforms sends a shutdown message instead of a signal.
  process.on("message", (msg) => {
    if (msg === "shutdown") stop("shutdown");
  });
}

void main();
