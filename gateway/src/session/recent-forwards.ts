/**
 * Messages forwarded to a peer instance in the last few seconds. If that peer turns out
 * to be dead (its will says "gone", or it is back with a new boot), the messages we sent
 * it went nowhere: their devices are told goodbye at once instead of waiting for their
 * next message or their 120 s timeout. Bounded in age and count.
 */
export interface ForwardedSession {
  readonly clientId: string;
  readonly sessionId: string;
}

export class RecentForwards {
  readonly #windowMs: number;
  readonly #maxPerPeer: number;
  readonly #byPeer = new Map<number, Map<string, { sessionId: string; at: number }>>();

  constructor(windowMs = 3000, maxPerPeer = 10_000) {
    this.#windowMs = windowMs;
    this.#maxPerPeer = maxPerPeer;
  }

  add(peer: number, clientId: string, sessionId: string, now = Date.now()): void {
    let m = this.#byPeer.get(peer);
    if (!m) {
      m = new Map();
      this.#byPeer.set(peer, m);
    }
    m.delete(clientId); // re-insert: Map order stays oldest first
    m.set(clientId, { sessionId, at: now });
    for (const [id, e] of m) {
      if (now - e.at <= this.#windowMs && m.size <= this.#maxPerPeer) break;
      m.delete(id);
    }
  }

  /** The sessions forwarded to `peer` within the window; forgets them. */
  takeRecent(peer: number, now = Date.now()): ForwardedSession[] {
    const m = this.#byPeer.get(peer);
    this.#byPeer.delete(peer);
    if (!m) return [];
    const out: ForwardedSession[] = [];
    for (const [clientId, e] of m)
      if (now - e.at <= this.#windowMs) out.push({ clientId, sessionId: e.sessionId });
    return out;
  }
}
