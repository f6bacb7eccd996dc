/**
 * The live sessions of this instance, by client id (one per device) and by connection id
 * (how UDP datagrams find their session).
 */
import { randomBytes } from "node:crypto";
import type { DeviceSession } from "./device-session.ts";

export class SessionRegistry {
  readonly #byClient = new Map<string, DeviceSession>();
  readonly #byConnection = new Map<number, DeviceSession>();

  get size(): number {
    return this.#byClient.size;
  }

  /**
   * A connection id for a new session: unpredictable (it is all that stands between a
   * stranger and a session's UDP stream, see docs/security.md), never 0, and unique among
   * live sessions.
   */
  allocateConnectionId(): number {
    for (;;) {
      const id = randomBytes(4).readUInt32BE(0);
      if (id !== 0 && !this.#byConnection.has(id)) return id;
    }
  }

  add(session: DeviceSession): void {
    this.#byClient.set(session.client.raw, session);
    this.#byConnection.set(session.connectionId, session);
  }

  /** Removes the session if it is still the one registered (a replaced one is not). */
  remove(session: DeviceSession): void {
    if (this.#byClient.get(session.client.raw) === session) this.#byClient.delete(session.client.raw);
    if (this.#byConnection.get(session.connectionId) === session)
      this.#byConnection.delete(session.connectionId);
  }

  byClient(clientId: string): DeviceSession | undefined {
    return this.#byClient.get(clientId);
  }

  byConnection(connectionId: number): DeviceSession | undefined {
    return this.#byConnection.get(connectionId);
  }

  all(): DeviceSession[] {
    return [...this.#byClient.values()];
  }

  connectionIds(): number {
    return this.#byConnection.size;
  }
}
