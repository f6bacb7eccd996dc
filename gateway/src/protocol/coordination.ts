/**
 * The messages gateway instances exchange among themselves (docs/broker-contract.md,
 * "gateway/..." topics), parsed once here. Pure.
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
