/**
 * The session's timers, injected (as MQTT.js's KeepaliveManager takes its timer) so that
 * idle and maximum-duration closes can be tested without waiting in real time.
 */

/** A one-shot timer that can be restarted from now (an idle timeout) or cancelled. */
export interface SessionTimer {
  refresh(): void;
  cancel(): void;
}

export type StartTimer = (ms: number, fire: () => void) => SessionTimer;

/** Node's own timers: `refresh` restarts a Timeout without a new allocation. */
export const startNodeTimer: StartTimer = (ms, fire) => {
  const t = setTimeout(fire, ms);
  return { refresh: () => void t.refresh(), cancel: () => clearTimeout(t) };
};
