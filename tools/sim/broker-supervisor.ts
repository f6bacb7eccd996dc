/**
 * The local box's broker, supervised as systemd supervises EMQX on the droplet
 * (Restart=always): whenever the broker process exits without being asked to, it is
 * started again on the same address and port after a short delay, and again (with a
 * growing delay, at most 10 s) while it cannot start. The gateways and devices reconnect
 * by themselves, as they would after an EMQX restart.
 */
import { type BrokerProcess, type BrokerStartOptions, startBroker } from "./broker-process.ts";

export type SupervisorEvent =
  | { readonly kind: "exited"; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly kind: "restarted"; readonly restarts: number }
  | { readonly kind: "restart_failed"; readonly error: string; readonly retryInMs: number };

export interface SupervisorOptions extends BrokerStartOptions {
  /** Delay before the first restart attempt; default 1000 ms (systemd's RestartSec=1). */
  readonly restartDelayMs?: number;
  readonly onEvent?: (event: SupervisorEvent) => void;
}

export interface SupervisedBroker {
  readonly url: string;
  readonly port: number;
  readonly gatewayPassword: string;
  /** How many times the broker was started again after an exit. */
  readonly restarts: number;
  /** The broker process running now (undefined between an exit and its restart). */
  readonly current: BrokerProcess | undefined;
  stop(): Promise<void>;
}

const MAX_RETRY_MS = 10_000;

export async function superviseBroker(options: SupervisorOptions = {}): Promise<SupervisedBroker> {
  const first = await startBroker(options);
  // Restarts reuse the port the first start got, so every client's URL stays valid.
  const startOptions: BrokerStartOptions = {
    ...options,
    port: first.port,
    gatewayPassword: first.gatewayPassword,
  };
  const baseDelay = options.restartDelayMs ?? 1000;
  let current: BrokerProcess | undefined = first;
  let restarts = 0;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;

  const watch = (broker: BrokerProcess) => {
    broker.process.once("exit", (code, signal) => {
      if (stopping) return;
      current = undefined;
      options.onEvent?.({ kind: "exited", code, signal });
      schedule(baseDelay);
    });
  };
  const schedule = (delayMs: number) => {
    timer = setTimeout(async () => {
      if (stopping) return;
      try {
        const broker = await startBroker(startOptions);
        if (stopping) {
          await broker.stop();
          return;
        }
        current = broker;
        restarts++;
        watch(broker);
        options.onEvent?.({ kind: "restarted", restarts });
      } catch (err) {
        const retryInMs = Math.min(MAX_RETRY_MS, Math.max(delayMs * 2, 500));
        options.onEvent?.({ kind: "restart_failed", error: (err as Error).message, retryInMs });
        schedule(retryInMs);
      }
    }, delayMs);
  };
  watch(first);

  return {
    url: first.url,
    port: first.port,
    gatewayPassword: first.gatewayPassword,
    get restarts() {
      return restarts;
    },
    get current() {
      return current;
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await current?.stop();
    },
  };
}
