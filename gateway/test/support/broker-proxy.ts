/**
 * A TCP relay on a free loopback port in front of the local broker, so a test can cut one
 * gateway's broker connection while the broker and the gateway both live: the broker sees
 * the socket close without DISCONNECT and publishes the gateway's will, and the gateway's
 * MQTT client reconnects through the relay as it would after a network fault.
 */
import net from "node:net";

export interface BrokerProxy {
  /** `mqtt://127.0.0.1:<port>` of the relay. */
  readonly url: string;
  /** Closes every relayed connection now; new ones are relayed as before. */
  cut(): void;
  /**
   * While on, every new connection is closed at once, as a broker that is not back yet
   * would (the gateway behind the relay keeps retrying): one instance held out longer
   * than its peers after a broker restart.
   */
  refuse(on: boolean): void;
  stop(): Promise<void>;
}

export async function startBrokerProxy(brokerPort: number): Promise<BrokerProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(brokerPort, "127.0.0.1");
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  const cut = () => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    cut,
    refuse(on) {
      refusing = on;
    },
    async stop() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
