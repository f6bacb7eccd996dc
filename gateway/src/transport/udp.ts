/** The instance's one UDP socket: every device session shares it (demultiplexed by connection id). */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";

export type DatagramHandler = (datagram: Buffer, from: RemoteInfo) => void;

export class UdpTransport {
  readonly #socket: Socket;

  private constructor(socket: Socket) {
    this.#socket = socket;
  }

  /**
   * Binds the socket; datagrams are delivered once receive() names their handler (until
   * then, as before any session exists, they are simply not read by anyone).
   */
  static bind(port: number, host: string): Promise<UdpTransport> {
    const socket = createSocket({
      type: host.includes(":") ? "udp6" : "udp4",
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
    });
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        // A send or receive error on one datagram must never kill the process.
        socket.on("error", () => {});
        resolve(new UdpTransport(socket));
      });
    });
  }

  receive(onDatagram: DatagramHandler): void {
    this.#socket.on("message", onDatagram);
  }

  get port(): number {
    return this.#socket.address().port;
  }

  /** `onError` is called once if the datagram cannot be sent, however send fails. */
  send(datagram: Buffer, port: number, address: string, onError?: () => void): void {
    try {
      this.#socket.send(datagram, port, address, (err) => {
        // Counted by the caller (down_send_failed), once.
        if (err) onError?.();
      });
    } catch {
      // dgram throws synchronously for some failures (a bad port such as 0, a socket
      // already closed while encodes were in flight); the callback then never runs. The
      // caller sends from inside a promise callback, so an escaped throw would lose the
      // frame uncounted, as an unhandled rejection.
      onError?.();
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
