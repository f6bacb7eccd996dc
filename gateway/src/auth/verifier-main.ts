/**
 * The device verifier process (PM2 app `device-auth`, dist/gateway/verifier.js): EMQX's
 * HTTP authenticator for devices, on 127.0.0.1:9100 by default.
 *
 * Configuration as the gateways read theirs (environment over GATEWAY_ENV_FILE):
 * MQTT_SIGNING_KEY (required), VERIFIER_PORT, VERIFIER_BIND, LOG_LEVEL. A bad or missing
 * value exits 2 naming the variable. VERIFIER_INSECURE_DEV=1 without a key allows every
 * device and says so loudly, at start and periodically.
 */
import { loadEnv } from "../env.ts";
import { createLogger } from "../ops/log.ts";
import { configOrExit, logUnhandledRejections, onStopRequest } from "../ops/process.ts";
import { insecureFlagIgnored, parseVerifierConfig, type VerifierConfig } from "./verifier-config.ts";
import { createVerifier } from "./verifier-server.ts";

const INSECURE_WARNING =
  "INSECURE: VERIFIER_INSECURE_DEV=1 and no MQTT_SIGNING_KEY: every device is allowed without checking its credentials. Development only; never in production.";

async function main(): Promise<void> {
  const env = configOrExit("device-auth", () => loadEnv());
  const config: VerifierConfig = configOrExit("device-auth", () => parseVerifierConfig(env));
  const log = createLogger(config.logLevel, 0).child({ app: "device-auth" });
  logUnhandledRejections(log);
  const verifier = createVerifier({ signingKey: config.signingKey, log });
  let port: number;
  try {
    port = await verifier.listen(config.port, config.bind);
  } catch (err) {
    log.fatal({ err: (err as Error).message, bind: config.bind, port: config.port }, "cannot listen");
    process.exit(1);
  }
  log.info(
    { bind: config.bind, port, mode: config.insecureDev ? "insecure_dev" : "verify" },
    "device verifier started",
  );
  if (insecureFlagIgnored(env, config)) {
    log.warn("VERIFIER_INSECURE_DEV=1 is ignored: MQTT_SIGNING_KEY is set, every device is verified");
  }
  const timers: NodeJS.Timeout[] = [];
  if (config.insecureDev) {
    log.warn({ event: "insecure_dev" }, INSECURE_WARNING);
    timers.push(
      setInterval(() => log.warn({ event: "insecure_dev" }, INSECURE_WARNING), config.warnIntervalMs),
    );
  }
  timers.push(
    setInterval(() => log.info({ totals: verifier.stats.toJSON() }, "totals"), config.totalsIntervalMs),
  );
  process.send?.("ready");

  onStopRequest((signal) => {
    for (const t of timers) clearInterval(t);
    log.info({ signal, totals: verifier.stats.toJSON() }, "stopping");
    verifier.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

void main();
