/**
 * MQTT topics of the broker contract (docs/broker-contract.md). Pure: topic strings in,
 * typed routes out.
 */

export const SHARE_GROUP = "gateway";
export const INGEST_PREFIX = "ingest/";
export const DISCONNECTED_PREFIX = "lifecycle/disconnected/";
export const PRESENCE_PREFIX = "gateway/presence/";
export const CLAIMS_PREFIX = "gateway/claims/";
export const FORWARD_PREFIX = "gateway/forward/";

/** The shared subscription every gateway instance takes on device messages. */
export const INGEST_SHARE = `$share/${SHARE_GROUP}/${INGEST_PREFIX}+`;

/** The topic the broker auto-subscribes a device to (broker contract rule 3). */
export function replyTopic(clientId: string): string {
  return `devices/p2p/${clientId}`;
}

/** An instance's retained presence (its will clears it to "gone"). */
export function presenceTopic(instanceId: number): string {
  return `${PRESENCE_PREFIX}${instanceId}`;
}

export function claimTopic(clientId: string): string {
  return `${CLAIMS_PREFIX}${clientId}`;
}

export function forwardTopic(instanceId: number): string {
  return `${FORWARD_PREFIX}${instanceId}`;
}

export type InboundRoute =
  | { readonly kind: "ingest"; readonly clientId: string }
  | { readonly kind: "disconnected"; readonly clientId: string }
  | { readonly kind: "presence"; readonly instanceId: number }
  | { readonly kind: "claim"; readonly clientId: string }
  | { readonly kind: "forward"; readonly instanceId: number };

/** What a gateway instance subscribes to; only device messages are shared. */
export function gatewaySubscriptions(instanceId: number): string[] {
  return [
    INGEST_SHARE,
    `${DISCONNECTED_PREFIX}+`,
    `${PRESENCE_PREFIX}+`,
    `${CLAIMS_PREFIX}+`,
    forwardTopic(instanceId),
  ];
}

export function routeTopic(topic: string): InboundRoute | undefined {
  const tail = (prefix: string): string | undefined => {
    if (!topic.startsWith(prefix)) return undefined;
    const rest = topic.slice(prefix.length);
    return rest.length > 0 && !rest.includes("/") ? rest : undefined;
  };
  let rest = tail(INGEST_PREFIX);
  if (rest !== undefined) return { kind: "ingest", clientId: rest };
  rest = tail(DISCONNECTED_PREFIX);
  if (rest !== undefined) return { kind: "disconnected", clientId: rest };
  rest = tail(CLAIMS_PREFIX);
  if (rest !== undefined) return { kind: "claim", clientId: rest };
  rest = tail(PRESENCE_PREFIX);
  if (rest !== undefined && /^[1-9][0-9]{0,2}$/.test(rest))
    return { kind: "presence", instanceId: Number(rest) };
  rest = tail(FORWARD_PREFIX);
  if (rest !== undefined && /^[1-9][0-9]{0,2}$/.test(rest))
    return { kind: "forward", instanceId: Number(rest) };
  return undefined;
}
