/**
 * The gateway process: one instance (PM2 runs several). Config errors exit 2 with the
 * variable named; SIGINT/SIGTERM drain (goodbye to every device) and exit 0. Each exit
 * after the start first takes the Opus workers out of libopus (ops/exit.ts).
 */
import { startGateway } from "./app.ts";
import { describeConfig, parseConfig } from "./config.ts";
import { loadEnv } from "./env.ts";
import { closeOpusGatesAtExit } from "./ops/exit.ts";
import { createLogger } from "./ops/log.ts";
import { configOrExit, logUnhandledRejections, onStopRequest } from "./ops/process.ts";
import { startWatchdog } from "./ops/watchdog.ts";

async function main(): Promise<void> {
  const config = configOrExit("gateway", () => parseConfig(loadEnv()));
  const log = createLogger(config.logLevel, config.instanceId);
  log.info({ config: describeConfig(config) }, "starting");
  logUnhandledRejections(log);
  let running: Awaited<ReturnType<typeof startGateway>>;
  try {
    running = await startGateway(config, { log });
  } catch (err) {
    // A failed start has stopped the Opus workers it started: none is coding.
    log.fatal({ err: (err as Error).message }, "gateway failed to start");
    process.exit(1);
  }
  // Any exit from here on may find workers inside libopus (a drain that times out or fails
  // leaves them coding; one that completes has stopped all but a stuck one), where the exit
  // would abort the process: their gates are closed first.
  closeOpusGatesAtExit(running.pool, log);
  // After the start (its synchronous loading is not a stall).
  startWatchdog(config.watchdogStallMs);
  // PM2 (wait_ready) starts the next instance of a reload only after this.
  process.send?.("ready");
  onStopRequest((signal) => {
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
  });
}

void main();
