/**
 * The graceful stop of an instance (SIGINT, SIGTERM; app.ts `drain`): stop taking hellos,
 * tell peers, say goodbye to every device, leave the presence "gone" and disconnect.
 *
 * The instance counts as draining from the first step, before any broker round trip:
 * /readyz answers 503 and a hello that reaches it is passed on, not answered, also while the
 * broker has not yet confirmed the unsubscribe. Each wait for the broker is bounded: with
 * the broker down, mqtt.js holds an UNSUBSCRIBE or a publish until it reconnects, and the
 * drain would stall until DRAIN_TIMEOUT_MS ended the process without its goodbyes.
 */
import type { PresenceState } from "../protocol/coordination.ts";

/**
 * The most a drain waits for the broker at each step, ms. The broker runs on the same box
 * (or a private network): an answer takes milliseconds, so a second means it is not coming.
 * The three waits together stay well inside the default DRAIN_TIMEOUT_MS (8 s).
 */
export const BROKER_DRAIN_WAIT_MS = 1000;

export interface DrainingGateway {
  /** From now on no session opens and /readyz answers 503. */
  markDraining(): void;
  /** Goodbye to every device; resolves once the sessions are released. */
  drain(): Promise<void>;
  presencePayload(state: PresenceState, udpPort: number): string;
}

export interface DrainingBroker {
  unsubscribe(topic: string): Promise<void>;
  publish(topic: string, payload: string, retain: boolean): void;
  publishAndFlush(topic: string, payload: string, retain: boolean): Promise<void>;
  end(): Promise<void>;
}

export interface DrainSteps {
  readonly gateway: DrainingGateway;
  /** Absent when the instance never connected. */
  readonly broker: DrainingBroker | undefined;
  /** The shared subscription that hands the instance new hellos. */
  readonly ingest: string;
  readonly presenceTopic: string;
  readonly udpPort: number;
  /** Runs `fn` after `ms` (the end of a broker wait); an unref'd timer by default, injected for tests. */
  readonly schedule?: (fn: () => void, ms: number) => () => void;
}

function unrefTimer(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
}

export async function drainInstance(s: DrainSteps): Promise<void> {
  s.gateway.markDraining();
  const b = s.broker;
  const schedule = s.schedule ?? unrefTimer;
  /** Resolves when `p` settles, or after BROKER_DRAIN_WAIT_MS: what the broker did not confirm by then is given up. */
  const bounded = (p: Promise<void>) =>
    new Promise<void>((resolve) => {
      const cancel = schedule(resolve, BROKER_DRAIN_WAIT_MS);
      const settled = () => {
        cancel();
        resolve();
      };
      p.then(settled, settled);
    });
  if (b) {
    // First stop the broker handing us hellos, and tell peers we are leaving.
    await bounded(b.unsubscribe(s.ingest));
    b.publish(s.presenceTopic, s.gateway.presencePayload("draining", s.udpPort), true);
  }
  await s.gateway.drain();
  if (b) {
    await bounded(b.publishAndFlush(s.presenceTopic, s.gateway.presencePayload("gone", s.udpPort), true));
    await bounded(b.end());
  }
}
