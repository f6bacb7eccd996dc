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
import { startHealthServer } from "./ops/health.ts";
import type { Logger } from "./ops/log.ts";
import { GatewayMetrics } from "./ops/metrics.ts";
import { startLoopClock } from "./ops/watchdog.ts";
import { newBootId } from "./protocol/session-id.ts";
import { gatewaySubscriptions, INGEST_PREFIX, PRESENCE_PREFIX, SHARE_GROUP } from "./protocol/topics.ts";
import { Gateway } from "./session/gateway.ts";
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
  });
  let broker: BrokerClient | undefined;
  let udp: UdpTransport | undefined;
  let health: Server | undefined;
  let totalsTimer: NodeJS.Timeout | undefined;
  let rateTimer: NodeJS.Timeout | undefined;
  const presenceTopic = `${PRESENCE_PREFIX}${config.instanceId}`;

  const liveKit = config.livekit
    ? (await loadLiveKit())(config.livekit, {
        me,
        metrics,
        log,
        pool,
        isLive: (sessionId) => gatewayRef?.sessions.all().some((s) => s.sessionId === sessionId) ?? false,
      })
    : undefined;
  // Bound first: with UDP_PORT=0 (tests) the hello reply must carry the real port.
  let gatewayRef: Gateway | undefined;
  try {
    udp = await UdpTransport.bind(config.udpPort, config.udpBind, (d, from) =>
      gatewayRef?.handleDatagram(d, from),
    );
  } catch (err) {
    await pool.shutdown();
    metrics.stop();
    throw new Error(`cannot bind UDP ${config.udpBind}:${config.udpPort}: ${(err as Error).message}`);
  }
  const udpPort = udp.port;
  const loopClock = startLoopClock();
  const gateway = new Gateway({
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
    clearInterval(totalsTimer);
    clearInterval(rateTimer);
    loopClock.stop();
    await udp?.close();
    await new Promise<void>((resolve) => (health ? health.close(() => resolve()) : resolve()));
    health?.closeAllConnections();
    await pool.shutdown();
    await liveKit?.stop();
    metrics.stop();
  };

  gatewayRef = gateway;
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
        message: (topic, payload) => gateway.handleBrokerMessage(topic, payload),
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
        disconnected: () => log.warn("broker connection lost; reconnecting"),
      },
    );
    let lastUp = 0;
    let lastDown = 0;
    let fpsUp = 0;
    let fpsDown = 0;
    let latency: Record<string, { p50: number; p99: number }> = {};
    const quantiles = async (summary: GatewayMetrics["upstreamLatency"]) => {
      const values = (await summary.get()).values;
      const at = (q: number) => 1000 * (values.find((v) => v.labels.quantile === q)?.value ?? Number.NaN);
      return { p50: at(0.5), p99: at(0.99) };
    };
    rateTimer = setInterval(() => {
      void Promise.all([quantiles(metrics.upstreamLatency), quantiles(metrics.downstreamLatency)]).then(
        ([up, down]) => {
          latency = { upstream: up, downstream: down };
        },
      );
      fpsUp = metrics.framesUpTotal - lastUp;
      fpsDown = metrics.framesDownTotal - lastDown;
      lastUp = metrics.framesUpTotal;
      lastDown = metrics.framesDownTotal;
    }, 1000);
    rateTimer.unref();
    const snapshot = () => {
      const mem = process.memoryUsage();
      const byState: Record<string, number> = {};
      for (const s of gateway.sessions.all()) byState[s.state] = (byState[s.state] ?? 0) + 1;
      const ready = (broker?.connected ?? false) && !gateway.draining && pool.allAlive;
      return {
        ready,
        body: {
          instanceId: config.instanceId,
          bootId,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          draining: gateway.draining,
          brokerConnected: broker?.connected ?? false,
          udpPort,
          sessions: gateway.sessions.size,
          sessionsByState: byState,
          peers: Object.fromEntries(gateway.peers),
          workers: pool.stats(),
          framesPerSecond: { up: fpsUp, down: fpsDown },
          // Time inside the gateway, last 60 s: datagram in -> PCM to the agent, and agent
          // PCM frame -> datagram out (the latter includes the tts-start lead of first frames).
          gatewayLatencyMs: latency,
          drops: metrics.drops(),
          closes: metrics.closes(),
          memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal },
          eventLoopLagP99Ms: metrics.eventLoopDelay.percentile(99) / 1e6,
        },
      };
    };
    health = await startHealthServer({ snapshot, metrics }, config.healthPort, config.healthBind);
    const healthAddress = health.address();
    const healthPort =
      typeof healthAddress === "object" && healthAddress ? healthAddress.port : config.healthPort;
    totalsTimer = setInterval(() => {
      pool.sampleUtilization();
      const n = gateway.sessions.size;
      const over = n > config.sessionAlertThreshold;
      metrics.sessionAlert.set(over ? 1 : 0);
      const totals = {
        sessions: n,
        framesUp: metrics.framesUpTotal,
        framesDown: metrics.framesDownTotal,
        drops: metrics.drops(),
      };
      log.info({ totals }, "totals");
      if (over)
        log.error(
          { sessions: n, threshold: config.sessionAlertThreshold },
          "ALERT: sessions above threshold",
        );
    }, config.totalsIntervalMs);
    totalsTimer.unref();

    const running: RunningGateway = {
      gateway,
      metrics,
      pool,
      bootId,
      udpPort,
      healthPort,
      async drain() {
        const b = broker;
        if (b) {
          // First stop the broker handing us hellos, and tell peers we are leaving.
          await b.unsubscribe(`$share/${SHARE_GROUP}/${INGEST_PREFIX}+`).catch(() => {});
          b.publish(presenceTopic, gateway.presencePayload("draining", udpPort), true);
        }
        await gateway.drain();
        if (b) {
          await b.publishAndFlush(presenceTopic, gateway.presencePayload("gone", udpPort), true);
          await b.end();
        }
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
