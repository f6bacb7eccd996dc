/**
 * The messages gateway instances exchange among themselves (docs/broker-contract.md,
 * "gateway/..." topics) and the broker's lifecycle events: built and parsed only here.
 * Pure.
 */

/** A JSON object, or undefined for anything else (bad JSON, an array, a scalar). */
export function parseJsonObject(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString("utf8"));
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export interface ClaimMessage {
  readonly instanceId: number;
  readonly bootId: string;
  readonly sessionId: string;
  /** Epoch ms the hello reached the claiming instance. */
  readonly helloAt: number;
  /** The session closed: the claim is withdrawn. */
  readonly released: boolean;
}

/** `gateway/claims/<clientId>`; undefined when malformed. */
export function parseClaim(payload: Buffer): ClaimMessage | undefined {
  const c = parseJsonObject(payload);
  if (
    !c ||
    typeof c.instanceId !== "number" ||
    typeof c.bootId !== "string" ||
    typeof c.sessionId !== "string" ||
    typeof c.helloAt !== "number" ||
    !Number.isFinite(c.helloAt)
  )
    return undefined;
  return {
    instanceId: c.instanceId,
    bootId: c.bootId,
    sessionId: c.sessionId,
    helloAt: c.helloAt,
    released: c.released === true,
  };
}

/** `gateway/claims/<clientId>`: the claim of a live session, or its release. */
export function claimPayload(claim: Omit<ClaimMessage, "released">, released = false): string {
  return JSON.stringify(released ? { ...claim, released: true } : claim);
}

export type PresenceState = "up" | "draining" | "gone";

export interface PresenceMessage {
  readonly state: PresenceState;
  /** Absent only for a cleared (empty) retained presence. */
  readonly bootId: string | undefined;
}

/** `gateway/presence/<instanceId>`, retained; the will publishes "gone". */
export function presencePayload(bootId: string, state: PresenceState, udpPort: number): string {
  return JSON.stringify({ bootId, state, udpPort });
}

/** Undefined when malformed; an empty payload (retained presence cleared) is "gone". */
export function parsePresence(payload: Buffer): PresenceMessage | undefined {
  if (payload.length === 0) return { state: "gone", bootId: undefined };
  const p = parseJsonObject(payload);
  if (!p) return undefined;
  const bootId = typeof p.bootId === "string" ? p.bootId : undefined;
  if (p.state === "gone") return { state: "gone", bootId };
  if (bootId === undefined || (p.state !== "up" && p.state !== "draining")) return undefined;
  return { state: p.state, bootId };
}

export interface ForwardMessage {
  readonly clientId: string;
  /** The device's payload, as it came. */
  readonly payload: string;
  /** Epoch ms the message reached the forwarding instance, when it said. */
  readonly arrivedAt: number | undefined;
  /**
   * How many instances have passed the message on, counting the sender: 1 unless a draining
   * instance passed on a hello that had been forwarded to it (the field is then present).
   */
  readonly hops: number;
}

/** `gateway/forward/<instanceId>`: a device message handed to the instance that owns it. */
export function forwardPayload(clientId: string, payload: Buffer, arrivedAt?: number, hops = 1): string {
  return JSON.stringify({
    clientId,
    payload: payload.toString("utf8"),
    arrivedAt,
    hops: hops > 1 ? hops : undefined,
  });
}

export function parseForward(payload: Buffer): ForwardMessage | undefined {
  const f = parseJsonObject(payload);
  if (!f || typeof f.clientId !== "string" || typeof f.payload !== "string") return undefined;
  const hops = f.hops === undefined ? 1 : f.hops;
  if (typeof hops !== "number" || !Number.isInteger(hops) || hops < 1) return undefined;
  return {
    clientId: f.clientId,
    payload: f.payload,
    arrivedAt: typeof f.arrivedAt === "number" ? f.arrivedAt : undefined,
    hops,
  };
}

/** `lifecycle/disconnected/<clientId>` (broker contract rule 4): the broker's reason. */
export function parseDisconnectReason(payload: Buffer): string | undefined {
  const reason = parseJsonObject(payload)?.reason;
  return typeof reason === "string" ? reason : undefined;
}
