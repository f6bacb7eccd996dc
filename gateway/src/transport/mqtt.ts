/**
 * The gateway's MQTT client (mqtt.js). Thin: connect, subscribe, publish at QoS 0, and
 * hand every inbound message to one handler. Topic routing lives in protocol/topics.ts.
 */
import mqtt, { type MqttClient } from "mqtt";

export interface BrokerOptions {
  readonly url: string;
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
  readonly subscriptions: readonly string[];
  /** Published (retained) by the broker if this client vanishes without a clean disconnect. */
  readonly will: { readonly topic: string; readonly payload: string; readonly retain: boolean };
  /**
   * MQTT keepalive, seconds. The broker drops a client silent for 1.5x this (EMQX's
   * keepalive_multiplier and mochi alike), which is what fires the will of a process that
   * is stopped or hung rather than dead. Default 30.
   */
  readonly keepaliveS?: number;
  /**
   * Mean delay before each reconnect, ms; each try waits 0.5x..1.5x of it. Default 500: back
   * before the devices, whose firmware waits 60 s before it reconnects (device-protocol.md).
   */
  readonly reconnectMeanMs?: number;
}

export interface BrokerEvents {
  message(topic: string, payload: Buffer): void;
  /** Every (re)connect, after the subscriptions are in place (also the first, before `connect` resolves). */
  connected(client: BrokerClient): void;
  /** The connection to the broker was lost; not after the client's own end() or destroy(). */
  disconnected(): void;
  /**
   * After a reconnect, the subscribe failed or the broker refused a filter: the client is
   * connected but hears nothing on the refused filters. It subscribes again after a
   * reconnect delay, for as long as it takes; `connected` follows the one that succeeds.
   */
  subscribeFailed(err: Error): void;
}

export class BrokerClient {
  readonly #client: MqttClient;
  readonly #listed: readonly string[];
  readonly #unsubscribed = new Set<string>();
  /** The current connection's subscriptions are in place (see `subscribed`). */
  #subscribed = false;
  /**
   * end() or destroy() was called: the close that follows is ours, not a lost connection.
   * Reported as lost, it had every gateway log "broker connection lost" at the end of a
   * clean drain.
   */
  #closing = false;

  private constructor(client: MqttClient, subscriptions: readonly string[]) {
    this.#client = client;
    this.#listed = subscriptions;
  }

  /** What every (re)connect subscribes to: the options' list less what was unsubscribed since. */
  get #subscriptions(): string[] {
    return this.#listed.filter((t) => !this.#unsubscribed.has(t));
  }

  /**
   * Resolves once connected and subscribed; rejects on the first connection error or a
   * refused subscription. After a reconnect, a failed subscription is `subscribeFailed`.
   */
  static connect(
    options: BrokerOptions,
    events: BrokerEvents,
    connectTimeoutMs = 10_000,
  ): Promise<BrokerClient> {
    const client = mqtt.connect(options.url, {
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      clean: true,
      keepalive: options.keepaliveS ?? 30,
      reconnectPeriod: jittered(options.reconnectMeanMs ?? 500),
      connectTimeout: connectTimeoutMs,
      resubscribe: false,
      will: {
        topic: options.will.topic,
        payload: Buffer.from(options.will.payload),
        qos: 0,
        retain: options.will.retain,
      },
    });
    const broker = new BrokerClient(client, options.subscriptions);
    client.on("message", (topic, payload) => events.message(topic, payload));
    client.on("close", () => {
      if (broker.#closing) return;
      // A new random delay for each reconnect: after a broker restart the four instances
      // (and every other client) do not all come back in the same millisecond.
      client.options.reconnectPeriod = jittered(options.reconnectMeanMs ?? 500);
      events.disconnected();
    });
    return new Promise((resolve, reject) => {
      let first = true;
      /** Bumped on every connect and close: a subscribe answer of an older connection is moot. */
      let connection = 0;
      let retry: NodeJS.Timeout | undefined;
      const cancelRetry = () => {
        clearTimeout(retry);
        retry = undefined;
      };
      const fail = (err: Error) => {
        if (!first) return;
        first = false;
        client.end(true);
        reject(err);
      };
      const subscribe = () => {
        const mine = connection;
        // What was unsubscribed since (the drain) stays unsubscribed across reconnects.
        const filters = broker.#subscriptions;
        client.subscribe(filters, { qos: 0 }, (err, _granted, suback) => {
          const problem = subscribeProblem(filters, err, suback);
          if (!problem) {
            broker.#subscribed = true;
            if (first) {
              first = false;
              resolve(broker);
            }
            return events.connected(broker);
          }
          if (first) return fail(problem);
          // mqtt.js fails a pending SUBSCRIBE ("Connection closed") just before it emits
          // close, in the same turn: after that turn, an answer whose connection is gone is
          // moot (the next connect subscribes anew) and only a live one is reported.
          queueMicrotask(() => {
            if (mine !== connection) return;
            events.subscribeFailed(problem);
            // Subscribing again on this connection, rather than dropping it: a dropped
            // connection fires our will, and every peer would tell this instance's devices
            // goodbye although their sessions are fine. A SUBSCRIBE of a filter already held
            // only replaces it, so the whole list goes again. Cancelled by close and connect.
            retry = setTimeout(
              () => {
                retry = undefined;
                subscribe();
              },
              jittered(options.reconnectMeanMs ?? 500),
            );
          });
        });
      };
      client.on("error", fail);
      client.on("close", () => {
        connection++;
        broker.#subscribed = false;
        cancelRetry();
      });
      client.on("connect", () => {
        connection++;
        broker.#subscribed = false;
        cancelRetry();
        // Subscribe on every connect: clean sessions forget subscriptions.
        subscribe();
      });
    });
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  /**
   * Connected, and this connection's SUBSCRIBE granted. False from each (re)connect until
   * then, and for as long as the broker refuses it: connected but deaf (`subscribeFailed`).
   */
  get subscribed(): boolean {
    return this.#subscribed && this.#client.connected;
  }

  publish(topic: string, payload: string | Buffer, retain = false): void {
    this.#client.publish(topic, payload, { qos: 0, retain });
  }

  /** Publishes, then resolves once the packet has been written to the socket. */
  publishAndFlush(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    return new Promise((resolve) =>
      this.#client.publish(topic, payload, { qos: 0, retain }, () => resolve()),
    );
  }

  /**
   * Stops a subscription (the drain stops taking new hellos this way), also for every later
   * reconnect: a broker that restarts during a drain must not hand us hellos again.
   */
  unsubscribe(topic: string): Promise<void> {
    this.#unsubscribed.add(topic);
    return new Promise((resolve, reject) =>
      this.#client.unsubscribe(topic, (err) => (err ? reject(err) : resolve())),
    );
  }

  end(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => this.#client.end(false, {}, () => resolve()));
  }

  /** Drops the connection without DISCONNECT, as a crash does: the broker publishes the will. */
  destroy(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => this.#client.end(true, {}, () => resolve()));
  }
}

/**
 * Why a SUBSCRIBE did not take, or undefined. mqtt.js reports a filter the broker refused
 * (a SUBACK code of 0x80 or more) as an error whose SUBACK has a code per filter: name them.
 */
function subscribeProblem(
  filters: readonly string[],
  err: Error | null,
  suback: { readonly granted: readonly unknown[] } | undefined,
): Error | undefined {
  if (!err) return undefined;
  const refused = filters.filter((_, i) => {
    const code = suback?.granted[i];
    return typeof code === "number" && code >= 0x80;
  });
  return refused.length > 0 ? new Error(`broker refused subscriptions: ${refused.join(", ")}`) : err;
}

function jittered(meanMs: number): number {
  return Math.round(meanMs * (0.5 + Math.random()));
}
