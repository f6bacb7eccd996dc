/**
 * The gateway's counters and gauges. Every dropped input is counted here by reason; the
 * same figures feed `/health` (JSON) and `/metrics` (Prometheus, prom-client). The latency
 * summaries are `WindowedSummary`s: prom-client's `Summary` cost several % of the main thread.
 * One registry per gateway object, so tests can run several in one process.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { WORKER_READY_MS, WORKER_STALL_MS } from "../audio/opus-worker-bounds.ts";
import { newLossCounts, WORKER_LOSS_REASONS, type WorkerLossReason } from "../audio/opus-worker-loss.ts";
import { WindowedSummary } from "./windowed-summary.ts";

export type DropReason =
  // UDP
  /** Source port 0: no reply can reach it (dropped before the rate limit and any parsing). */
  | "udp_source_port_zero"
  | "udp_rate_limited"
  | "udp_too_short"
  | "udp_not_audio"
  | "udp_length_mismatch"
  | "udp_unknown_connection"
  | "udp_replay"
  | "udp_sequence_jump"
  | "udp_unproven_source"
  | "udp_bad_opus"
  | "udp_opus_decode_failed"
  /** Handling the datagram threw (a defect): that datagram is lost, the process carries on (app.ts). */
  | "udp_handler_failed"
  // MQTT
  | "mqtt_oversized"
  | "mqtt_malformed_json"
  | "mqtt_not_object"
  | "mqtt_unknown_type"
  | "mqtt_hello_version"
  | "mqtt_bad_hello"
  | "mqtt_hello_over_budget"
  | "mqtt_bad_field"
  | "mqtt_bad_client_id"
  | "mqtt_bad_topic"
  | "mqtt_no_session"
  | "mqtt_stale_session"
  | "mqtt_bad_internal"
  /** A hello handled too long after it arrived (a stalled loop): the device has given up on it. */
  | "mqtt_hello_too_late"
  /** A hello older than a session another instance opened since for the same device. */
  | "mqtt_hello_superseded"
  /**
   * A hello reaching a draining instance that could pass it to no live peer (none is up, or
   * it was passed on twice already): a draining instance opens no session.
   */
  | "mqtt_hello_draining"
  /** Handling the broker message threw (a defect): that message is lost, the process carries on (app.ts). */
  | "mqtt_handler_failed"
  // downstream
  | "down_queue_full"
  | "down_no_remote_address"
  | "down_encode_failed"
  | "down_send_failed"
  | "down_outside_turn";

export type CloseReason =
  | "device_goodbye"
  | "replaced"
  | "claimed_elsewhere"
  | "mqtt_disconnected"
  | "mqtt_takenover"
  | "inactivity_timeout"
  | "max_duration"
  | "agent_ended"
  | "agent_failed"
  | "drain"
  | "orphaned";

const LATENCY_PERCENTILES = [0.5, 0.95, 0.99];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #drops = new Map<DropReason, number>();
  readonly #closes = new Map<CloseReason, number>();
  readonly #dropCounter: Counter<"reason">;
  readonly #closeCounter: Counter<"reason">;
  readonly framesUp: Counter;
  readonly framesUpMissed: Counter;
  readonly framesDown: Counter;
  readonly sessionsOpened: Counter;
  /** Device messages handled by the owning session, by type. */
  readonly deviceMessages: Counter<"type">;
  /** Device messages passed to the owning instance (owner routing). */
  readonly forwarded: Counter;
  /** Goodbyes this instance sent for sessions of a dead instance (one survivor per device). */
  readonly orphanGoodbyes: Counter;
  /** Subscribes after a broker reconnect that failed or were refused (each is retried). */
  readonly brokerSubscribeFailures: Counter;
  /** Claims of live sessions published again for peers that may have missed them. */
  readonly claimsRepublished: Counter;
  /** The broker's takeover events for devices (a new connection replaced the old one), by outcome here. */
  readonly deviceTakeovers: Counter<"outcome">;
  readonly sessions: Gauge;
  /** LiveKit rooms joined and not yet closed. */
  readonly agentRooms: Gauge;
  /** Agent-side events: room failures, dropped device audio or data, sweep deletions. */
  readonly agentEvents: Counter<"event">;
  readonly sessionAlert: Gauge;
  readonly helloReply: WindowedSummary;
  readonly upstreamLatency: WindowedSummary;
  readonly downstreamLatency: WindowedSummary;
  /** LiveKit media process only: agent RTP received from it to PCM handed to the session. */
  readonly agentDecodeLatency: WindowedSummary;
  /** LiveKit media process only: a liveness ping written to it, to its answer read. */
  readonly mediaPing: WindowedSummary;
  readonly eventLoopDelay: IntervalHistogram;
  /** The Opus pool's workers lost by reason (watchOpusWorkers); none until a pool is watched. */
  #opusWorkerLosses: () => Readonly<Record<WorkerLossReason, number>> = newLossCounts;
  #framesUpTotal = 0;
  #framesUpMissedTotal = 0;
  #framesDownTotal = 0;

  constructor(instanceId: number) {
    this.registry.setDefaultLabels({ instance: String(instanceId) });
    collectDefaultMetrics({ register: this.registry });
    const r = [this.registry];
    this.#dropCounter = new Counter({
      name: "gateway_dropped_total",
      help: "Inputs dropped, by reason",
      labelNames: ["reason"],
      registers: r,
    });
    this.#closeCounter = new Counter({
      name: "gateway_sessions_closed_total",
      help: "Sessions closed, by reason",
      labelNames: ["reason"],
      registers: r,
    });
    this.framesUp = new Counter({
      name: "gateway_frames_up_total",
      help: "Device audio frames decoded and passed to the agent",
      registers: r,
    });
    this.framesUpMissed = new Counter({
      name: "gateway_frames_up_missed_total",
      help: "Device audio frames missing before a frame taken (gaps in a session's UDP sequence: lost on the way, or dropped here)",
      registers: r,
    });
    this.framesDown = new Counter({
      name: "gateway_frames_down_total",
      help: "Agent audio frames encoded and sent to devices",
      registers: r,
    });
    this.sessionsOpened = new Counter({
      name: "gateway_sessions_opened_total",
      help: "Sessions opened by a hello",
      registers: r,
    });
    this.deviceMessages = new Counter({
      name: "gateway_device_messages_total",
      help: "Device messages handled by their owning session, by type",
      labelNames: ["type"],
      registers: r,
    });
    this.forwarded = new Counter({
      name: "gateway_forwarded_total",
      help: "Device messages forwarded to the owning instance",
      registers: r,
    });
    this.orphanGoodbyes = new Counter({
      name: "gateway_orphan_goodbyes_total",
      help: "Goodbyes sent for the sessions of a dead instance",
      registers: r,
    });
    this.brokerSubscribeFailures = new Counter({
      name: "gateway_broker_subscribe_failures_total",
      help: "Subscribes after a broker reconnect that failed or were refused (the instance hears nothing on those filters until a retry succeeds)",
      registers: r,
    });
    this.deviceTakeovers = new Counter({
      name: "gateway_device_takeovers_total",
      help: "Device connections taken over by a new one with the same client id, by what this instance did: closed (its session was the old connection's), kept_recent (its session's hello came too shortly before to tell), no_session",
      labelNames: ["outcome"],
      registers: r,
    });
    this.claimsRepublished = new Counter({
      name: "gateway_claims_republished_total",
      help: "Claims of live sessions published again in a pass (after each broker reconnect, and when a peer says it is up: it has just subscribed)",
      registers: r,
    });
    const losses = () => this.#opusWorkerLosses();
    new Counter({
      name: "gateway_opus_worker_restarts_total",
      help: `Opus worker threads replaced, by what happened to the one replaced: exited (it ended, or threw), hung (owed a batch and answered nothing for ${WORKER_STALL_MS} ms), not_ready (not loaded within ${WORKER_READY_MS} ms)`,
      labelNames: ["reason"],
      registers: r,
      // Read from the pool at each scrape: the slots count their losses for /health already,
      // and both views then show the same figures.
      collect() {
        const counts = losses();
        this.reset();
        for (const reason of WORKER_LOSS_REASONS) this.inc({ reason }, counts[reason]);
      },
    });
    this.agentRooms = new Gauge({ name: "gateway_agent_rooms", help: "LiveKit rooms joined", registers: r });
    this.agentEvents = new Counter({
      name: "gateway_agent_events_total",
      help: "Agent-side events by kind (failures, drops, sweeps)",
      labelNames: ["event"],
      registers: r,
    });
    this.sessions = new Gauge({ name: "gateway_sessions", help: "Live device sessions", registers: r });
    this.sessionAlert = new Gauge({
      name: "gateway_session_alert",
      help: "1 while sessions exceed SESSION_ALERT_THRESHOLD",
      registers: r,
    });
    const summary = (name: string, help: string) =>
      // A 60 s window in 5 age slots, as the prom-client summaries had (maxAgeSeconds 60, ageBuckets 5).
      new WindowedSummary({
        name,
        help,
        percentiles: LATENCY_PERCENTILES,
        slots: 5,
        slotMs: 12_000,
        registers: r,
      });
    this.helloReply = summary("gateway_hello_reply_seconds", "Hello received to hello reply published");
    this.upstreamLatency = summary(
      "gateway_upstream_seconds",
      "Datagram received to PCM handed to the agent",
    );
    this.downstreamLatency = summary("gateway_downstream_seconds", "Agent PCM frame queued to datagram sent");
    this.agentDecodeLatency = summary(
      "gateway_agent_decode_seconds",
      "Agent RTP from the media process to PCM handed to the session (reorder wait and decode), from the packet that completes a downstream frame",
    );
    this.mediaPing = summary(
      "gateway_media_ping_seconds",
      "Liveness ping written to the media process to its answer read: both pipes and the child's frame loop",
    );
    this.eventLoopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.eventLoopDelay.enable();
  }

  drop(reason: DropReason): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
    this.#dropCounter.inc({ reason });
  }

  closed(reason: CloseReason): void {
    this.#closes.set(reason, (this.#closes.get(reason) ?? 0) + 1);
    this.#closeCounter.inc({ reason });
  }

  frameUp(): void {
    this.#framesUpTotal++;
    this.framesUp.inc();
  }

  /** `count` device frames missing from a session's stream (a gap in its UDP sequence). */
  framesMissedUp(count: number): void {
    this.#framesUpMissedTotal += count;
    this.framesUpMissed.inc(count);
  }

  get framesUpMissedTotal(): number {
    return this.#framesUpMissedTotal;
  }

  frameDown(): void {
    this.#framesDownTotal++;
    this.framesDown.inc();
  }

  get framesUpTotal(): number {
    return this.#framesUpTotal;
  }

  get framesDownTotal(): number {
    return this.#framesDownTotal;
  }

  /** Where `gateway_opus_worker_restarts_total` and the totals line read the pool's worker losses. */
  watchOpusWorkers(losses: () => Readonly<Record<WorkerLossReason, number>>): void {
    this.#opusWorkerLosses = losses;
  }

  /** The Opus pool's workers lost since it started, by reason (all 0 until one is watched). */
  opusWorkerRestarts(): Record<WorkerLossReason, number> {
    return { ...this.#opusWorkerLosses() };
  }

  dropCount(reason: DropReason): number {
    return this.#drops.get(reason) ?? 0;
  }

  drops(): Record<string, number> {
    return Object.fromEntries(this.#drops);
  }

  closes(): Record<string, number> {
    return Object.fromEntries(this.#closes);
  }

  stop(): void {
    this.eventLoopDelay.disable();
  }
}
