/**
 * Wiring: config -> Opus pool -> UDP socket -> broker -> gateway core -> health.
 * `startGateway` is what main.ts runs and what the tests start in-process.
 */
import type { Server } from "node:http";
import type { AgentFactory } from "./agent/agent-bridge.ts";
import { createEchoAgent } from "./agent/echo.ts";
import type { createLiveKitAgent as CreateLiveKitAgent } from "./agent/livekit/factory.ts";
import { OpusPool } from "./audio/opus-pool.ts";
import type { GatewayConfig } from "./config.ts";
import { drainInstance } from "./ops/drain.ts";
import { startHealthServer } from "./ops/health.ts";
import { healthSnapshot, RateSampler } from "./ops/health-body.ts";
import { type Logger, LogLimiter } from "./ops/log.ts";
import { GatewayMetrics } from "./ops/metrics.ts";
import { startTotals } from "./ops/totals.ts";
import { startLoopClock } from "./ops/watchdog.ts";
import { newBootId } from "./protocol/session-id.ts";
import { gatewaySubscriptions, INGEST_SHARE, presenceTopic as presenceTopicOf } from "./protocol/topics.ts";
import { Gateway } from "./session/gateway.ts";
import { SessionRegistry } from "./session/registry.ts";
import { BrokerClient } from "./transport/mqtt.ts";
import { UdpTransport } from "./transport/udp.ts";

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly metrics: GatewayMetrics;
  readonly pool: OpusPool;
  readonly bootId: string;
  readonly udpPort: number;
  readonly healthPort: number;
  /** Graceful stop: no new hellos, goodbye to every device, release, disconnect. */
  drain(): Promise<void>;
  /** Abrupt stop for tests: no goodbyes (like a crash), but every handle released. */
  kill(): Promise<void>;
}

export interface StartOptions {
  readonly log: Logger;
  readonly agentFactory?: AgentFactory;
}

export async function startGateway(config: GatewayConfig, options: StartOptions): Promise<RunningGateway> {
  const { log } = options;
  const bootId = newBootId();
  const me = { instanceId: config.instanceId, bootId };
  const metrics = new GatewayMetrics(config.instanceId);
  const startedAt = Date.now();
  const pool = await OpusPool.start({
    size: config.workerCount,
    complexity: config.opusComplexity,
    bitrate: config.opusBitrate,
    inlineStreams: config.opusInlineStreams,
    log,
  });
  metrics.watchOpusWorkers(() => pool.workerLosses());
  let broker: BrokerClient | undefined;
  let udp: UdpTransport | undefined;
  let health: Server | undefined;
  let stopTotals: (() => void) | undefined;
  let rates: RateSampler | undefined;
  const presenceTopic = presenceTopicOf(config.instanceId);

  const sessions = new SessionRegistry();
  let liveKit: ReturnType<typeof CreateLiveKitAgent> | undefined;
  try {
    liveKit = config.livekit
      ? (await loadLiveKit())(config.livekit, {
          me,
          metrics,
          log,
          pool,
          isLive: (sessionId) => sessions.all().some((s) => s.sessionId === sessionId),
        })
      : undefined;
  } catch (err) {
    // As after a failed UDP bind below: the workers started above must not outlive the start.
    await pool.shutdown();
    metrics.stop();
    throw err;
  }
  // Bound first: with UDP_PORT=0 (tests) the hello reply must carry the real port.
  try {
    udp = await UdpTransport.bind(config.udpPort, config.udpBind);
  } catch (err) {
    await pool.shutdown();
    metrics.stop();
    throw new Error(`cannot bind UDP ${config.udpBind}:${config.udpPort}: ${(err as Error).message}`);
  }
  const udpPort = udp.port;
  const loopClock = startLoopClock();
  const gateway = new Gateway({
    sessions,
    arrivedAt: () => loopClock.arrivedAt(),
    balanceSlack: config.helloBalanceSlack,
    me,
    publicHost: config.publicHost,
    udpPort,
    idleTimeoutMs: config.idleTimeoutMs,
    maxSessionMs: config.maxSessionMs,
    sourceLimit: config.udpSourceLimit,
    pool,
    metrics,
    log,
    agentFactory: options.agentFactory ?? (liveKit ? liveKit.factory : createEchoAgent),
    ports: {
      publish: (topic, payload, retain) => broker?.publish(topic, payload, retain),
      sendUdp: (datagram, to) =>
        udp?.send(datagram, to.port, to.address, () => metrics.drop("down_send_failed")),
    },
  });

  const release = async () => {
    stopTotals?.();
    rates?.stop();
    loopClock.stop();
    await udp?.close();
    await new Promise<void>((resolve) => (health ? health.close(() => resolve()) : resolve()));
    health?.closeAllConnections();
    await pool.shutdown();
    await liveKit?.stop();
    metrics.stop();
  };

  // A subscription the broker refuses is retried every ~0.5 s: rate-limited as the core's
  // drop warnings are (the counter still counts every one).
  const limiter = new LogLimiter();
  const warn = (key: string, fields: Record<string, unknown>, message: string) =>
    limiter.run(key, (suppressed) =>
      log.warn(suppressed > 0 ? { ...fields, suppressedBefore: suppressed } : fields, message),
    );
  // What one input makes throw is that input's failure, not the process's: uncaught, it ended
  // the instance and every session on it, and the device that sent it (its hellos always
  // reach the same instance) could do so again after each restart. Counted, logged as an
  // error (rate-limited), and the next input is handled.
  const guarded =
    <A extends unknown[]>(
      reason: "mqtt_handler_failed" | "udp_handler_failed",
      handle: (...args: A) => void,
    ) =>
    (...args: A): void => {
      try {
        handle(...args);
      } catch (err) {
        metrics.drop(reason);
        limiter.run(reason, (suppressed) =>
          log.error(
            {
              reason,
              err: err instanceof Error ? (err.stack ?? err.message) : String(err),
              suppressedBefore: suppressed,
            },
            "handling one input threw; it is dropped and the process carries on",
          ),
        );
      }
    };
  udp.receive(guarded("udp_handler_failed", (d, from) => gateway.handleDatagram(d, from)));
  try {
    broker = await BrokerClient.connect(
      {
        url: config.mqttUrl,
        clientId: `gateway-${config.instanceId}-${bootId}`,
        username: config.mqttUsername,
        password: config.mqttPassword,
        keepaliveS: config.mqttKeepaliveS,
        subscriptions: gatewaySubscriptions(config.instanceId),
        // Not an empty payload: some brokers (mochi) refuse a zero-length will.
        will: { topic: presenceTopic, payload: gateway.presencePayload("gone", udpPort), retain: true },
      },
      {
        message: guarded("mqtt_handler_failed", (topic: string, payload: Buffer) =>
          gateway.handleBrokerMessage(topic, payload),
        ),
        connected: (client) => {
          client.publish(
            presenceTopic,
            gateway.presencePayload(gateway.draining ? "draining" : "up", udpPort),
            true,
          );
          // Claims published while a peer was not subscribed (a broker restart) were lost.
          gateway.republishClaims();
          log.info({ url: config.mqttUrl, sessions: gateway.sessions.size }, "broker connected");
        },
        disconnected: () => {
          gateway.brokerDisconnected();
          log.warn("broker connection lost; reconnecting");
        },
        subscribeFailed: (err) => {
          metrics.brokerSubscribeFailures.inc();
          warn(
            "broker_subscribe_failed",
            { err: err.message },
            "broker subscription failed after a reconnect; subscribing again",
          );
        },
      },
    );
    const sampler = new RateSampler(metrics);
    rates = sampler;
    const snapshot = () =>
      healthSnapshot({
        instanceId: config.instanceId,
        bootId,
        startedAt,
        udpPort,
        metrics,
        rates: sampler,
        brokerConnected: () => broker?.connected ?? false,
        brokerSubscribed: () => broker?.subscribed ?? false,
        draining: () => gateway.draining,
        workersAlive: () => pool.allAlive,
        workers: () => pool.stats(),
        inlineCodecStreams: () => pool.inlineStreams,
        inlineCodecUtilization: () => pool.inlineUtilization,
        sessionStates: () => Array.from(gateway.sessions.all(), (session) => session.state),
        sessionCount: () => gateway.sessions.size,
        peers: () => gateway.peers,
      });
    health = await startHealthServer({ snapshot, metrics }, config.healthPort, config.healthBind);
    const healthAddress = health.address();
    const healthPort =
      typeof healthAddress === "object" && healthAddress ? healthAddress.port : config.healthPort;
    stopTotals = startTotals({
      metrics,
      log,
      intervalMs: config.totalsIntervalMs,
      alertThreshold: config.sessionAlertThreshold,
      sessionCount: () => gateway.sessions.size,
      sample: () => pool.sampleUtilization(),
    });

    const running: RunningGateway = {
      gateway,
      metrics,
      pool,
      bootId,
      udpPort,
      healthPort,
      async drain() {
        await drainInstance({ gateway, broker, ingest: INGEST_SHARE, presenceTopic, udpPort });
        await release();
      },
      async kill() {
        // No DISCONNECT: the broker publishes our will ("gone"), as after a crash.
        await broker?.destroy();
        // Nothing reaches the broker any more (the goodbyes go nowhere); closing the
        // sessions releases their timers, codec streams and agents.
        await gateway.drain();
        await release();
      },
    };
    liveKit?.start();
    log.info(
      {
        udpPort,
        healthPort,
        bootId,
        workers: config.workerCount,
        opusInlineStreams: config.opusInlineStreams,
        agent: config.livekit ? "livekit" : "echo",
      },
      "gateway started",
    );
    return running;
  } catch (err) {
    await broker?.end();
    await release();
    throw err;
  }
}

/**
 * The LiveKit agent (and its ~40 MB of SDKs) loads only when LiveKit is configured: the
 * echo-agent instances of the local box and the tests never pay for it. Built, it is
 * dist/gateway/livekit.js beside main.js (a separate esbuild entry).
 */
async function loadLiveKit(): Promise<typeof CreateLiveKitAgent> {
  const fromSource = import.meta.url.endsWith(".ts");
  const url = new URL(fromSource ? "./agent/livekit/factory.ts" : "./livekit.js", import.meta.url);
  const mod = (await import(url.href)) as { createLiveKitAgent: typeof CreateLiveKitAgent };
  return mod.createLiveKitAgent;
}
