/**
 * A device session's hold on its LiveKit room: the room created, the gateway's participant
 * joined through the room transport, the agent dispatched; data sent while joined; and at
 * close the last message sent, the room left and deleted. What the room's events mean is
 * the bridge's (bridge.ts); this only opens, carries and closes.
 */
import type { AgentSessionInfo } from "../agent-bridge.ts";
import { roomName } from "./room-names.ts";
import type { RoomTransport, RoomTransportFactory, RoomTransportHandlers } from "./room-transport.ts";
import type { LiveKitServices } from "./services.ts";

/** A join that has not completed by then fails (the device is told goodbye); close never waits longer. */
const JOIN_TIMEOUT_MS = 15_000;

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class RoomLink {
  readonly name: string;
  readonly #info: AgentSessionInfo;
  readonly #services: LiveKitServices;
  readonly #transports: RoomTransportFactory;
  #transport: RoomTransport | undefined;
  #connected = false;
  /** Counted in the open-rooms gauge: only a room that was joined is taken off it at close. */
  #counted = false;
  #closed = false;

  constructor(info: AgentSessionInfo, services: LiveKitServices, transports: RoomTransportFactory) {
    this.#info = info;
    this.#services = services;
    this.#transports = transports;
    this.name = roomName(info.mac, info.sessionId);
  }

  /** Joined, and not yet closing: data may be sent. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The transport once it exists (the join may still be under way). */
  get transport(): RoomTransport | undefined {
    return this.#transport;
  }

  /**
   * Creates the room, joins it and dispatches the agent; `created` runs once the transport
   * exists (before the join), `joined` between the join and the dispatch. Rejects when any
   * step fails; stops quietly when close() came first.
   */
  async open(
    handlers: RoomTransportHandlers,
    created: (transport: RoomTransport) => void,
    joined: () => void,
  ): Promise<void> {
    const { rooms, options } = this.#services;
    await rooms.createRoom({
      name: this.name,
      emptyTimeout: options.emptyTimeoutS,
      maxParticipants: options.maxParticipants,
    });
    if (this.#closed) return;
    const token = await this.#services.token(this.name, this.#info);
    if (this.#closed) return;
    this.#transport = this.#transports({ url: options.url, roomName: this.name, token }, handlers);
    created(this.#transport);
    await withTimeout(this.#transport.join(), JOIN_TIMEOUT_MS, "joining the room timed out");
    if (this.#closed) return;
    this.#connected = true;
    this.#counted = true;
    this.#services.events.roomOpened(this.name);
    joined();
    await this.#services.dispatch(this.name, this.#info);
  }

  /** Sends a reliable data packet while joined (a failed send is counted). */
  send(payload: Uint8Array): void {
    if (!this.#connected || !this.#transport) return;
    this.#transport.sendData(payload).catch(() => this.#services.events.drop("agent_data_send_failed"));
  }

  /**
   * Stops an open under way at once; then, once `before` has settled (the open, and what the
   * caller still sends while joined): off the gauge, `last` sent if still joined, the room
   * left and deleted. `before` must not reject.
   */
  async close(before: Promise<unknown>, last: () => Uint8Array): Promise<void> {
    this.#closed = true;
    await before;
    // Off the gauge as leaving starts, before any I/O, and only if it was ever on it.
    if (this.#counted) this.#services.events.roomClosed(this.name);
    const transport = this.#transport;
    if (this.#connected && transport) await transport.sendData(last()).catch(() => {});
    this.#connected = false;
    await transport?.leave().catch(() => {});
    await this.#services.rooms.deleteRoom(this.name).catch(() => {});
  }
}
