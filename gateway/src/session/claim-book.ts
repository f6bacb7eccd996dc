/**
 * The newest claim on each device, from every instance (gateway/claims/+). When an
 * instance dies (its will says "gone", or it is back with a new boot id), the claims it
 * held name the devices that lost their session: devices that only stream UDP send no
 * MQTT message that would reveal it, so without this book they would wait for their own
 * 120 s liveness timeout. Pure and bounded.
 */
import { type Claim, newerClaim } from "./owner-routing.ts";

export interface OrphanedClaim extends Claim {
  readonly clientId: string;
}

export class ClaimBook {
  readonly #max: number;
  /** Map order is insertion order: the first entries are the least recently claimed. */
  readonly #byClient = new Map<string, Claim>();
  /** Live claims per owner (`<instanceId>-<bootId>`): each instance's load, as all see it. */
  readonly #perOwner = new Map<string, number>();

  constructor(maxEntries = 100_000) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#byClient.size;
  }

  /** Records `claim` if it is newer than the one held; returns the newest claim after. */
  record(clientId: string, claim: Claim): Claim {
    const held = this.#byClient.get(clientId);
    if (held && !newerClaim(claim, held)) return held;
    this.#delete(clientId);
    this.#byClient.set(clientId, claim);
    this.#count(claim, 1);
    if (this.#byClient.size > this.#max) {
      const oldest = this.#byClient.keys().next().value;
      if (oldest !== undefined) this.#delete(oldest);
    }
    return claim;
  }

  /** The session closed: its claim goes, unless a newer one replaced it already. */
  release(clientId: string, sessionId: string): void {
    if (this.#byClient.get(clientId)?.sessionId === sessionId) this.#delete(clientId);
  }

  /** Sessions of `instanceId` (boot `bootId`) as the claims say. */
  load(instanceId: number, bootId: string): number {
    return this.#perOwner.get(`${instanceId}-${bootId}`) ?? 0;
  }

  get(clientId: string): Claim | undefined {
    return this.#byClient.get(clientId);
  }

  /** The device left the broker: whatever session it had is closed by its owner. */
  forget(clientId: string): void {
    this.#delete(clientId);
  }

  /**
   * The claims of `instanceId` whose boot is `deadBoot` (its will) or is not `liveBoot`
   * (it restarted); removes them, so one death is handled once.
   */
  takeOrphans(instanceId: number, boot: { deadBoot: string } | { liveBoot: string }): OrphanedClaim[] {
    const out: OrphanedClaim[] = [];
    for (const [clientId, c] of this.#byClient) {
      if (c.instanceId !== instanceId) continue;
      const dead = "deadBoot" in boot ? c.bootId === boot.deadBoot : c.bootId !== boot.liveBoot;
      if (!dead) continue;
      out.push({ clientId, ...c });
      this.#delete(clientId);
    }
    return out;
  }

  #delete(clientId: string): void {
    const held = this.#byClient.get(clientId);
    if (!held) return;
    this.#byClient.delete(clientId);
    this.#count(held, -1);
  }

  #count(c: Claim, delta: number): void {
    const key = `${c.instanceId}-${c.bootId}`;
    const n = (this.#perOwner.get(key) ?? 0) + delta;
    if (n > 0) this.#perOwner.set(key, n);
    else this.#perOwner.delete(key);
  }
}
