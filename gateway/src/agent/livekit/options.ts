/**
 * The LiveKit agent's options, as config.ts reads them from the environment. Declared
 * here, beside the code that uses them, so the agent never imports the process config.
 */

export type AgentDispatchConfig =
  | { readonly kind: "agent"; readonly agentName: string }
  | { readonly kind: "webhook"; readonly url: string; readonly bearer: string | undefined }
  | { readonly kind: "none" };

export interface LiveKitConfig {
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** How the agent gets into a session's room. */
  readonly dispatch: AgentDispatchConfig;
  /** LiveKit deletes a room this long after its last participant left. */
  readonly emptyTimeoutS: number;
  /** Ghost-room sweep period; 0 disables the periodic sweep (it still runs at start). */
  readonly sweepIntervalMs: number;
  /**
   * The message that makes the agent greet (docs/agent-data-channel.md): `agent_ready`
   * (default; both deployed agent versions greet on it) or `start_greeting` (only the
   * current version, as BUNNY sends it). Never both: the current version would greet twice.
   */
  readonly greeting: "agent_ready" | "start_greeting";
  /**
   * How rooms move media (LIVEKIT_MEDIA): `process` (default), the Go media process that
   * forwards the device's Opus unchanged (docs/media-process.md), or `rtc-node`, in-process.
   */
  readonly media: "process" | "rtc-node";
  /**
   * OS threads the media process runs Go code on (MEDIA_THREADS, its GOMAXPROCS). One by
   * default: with more, idle processors spin and hand work between threads on every
   * packet, which cost 10-40 % more CPU in that process at 10-100 rooms (docs/performance.md).
   */
  readonly mediaThreads: number;
  /**
   * How long after a device abort a turn signal the interrupted reply still owed is dropped
   * as late (AGENT_LATE_SIGNAL_MS; turns.ts LATE_SIGNAL_MS by default): longer tolerates a
   * data channel lagging further behind the agent's attribute, and delays a new turn that
   * only such a signal would start.
   */
  readonly lateSignalMs: number;
}
