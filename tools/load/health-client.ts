/** Reading gateway instances' health endpoints from the tools (local box, load test, soak). */
import type { HealthBody } from "../../gateway/src/ops/health-body.ts";

/** GET a JSON document; undefined if the instance does not answer in time. */
export async function fetchJson(url: string, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * GET `<baseUrl>/health`, typed as the gateway declares it (the body is the gateway's own
 * JSON, of the same bundle, so it is taken as is); undefined if the instance does not answer.
 */
export async function fetchHealth(baseUrl: string, timeoutMs = 2000): Promise<HealthBody | undefined> {
  return (await fetchJson(`${baseUrl}/health`, timeoutMs)) as HealthBody | undefined;
}

/** Resolves once `<baseUrl>/readyz` answers 200 (broker connected, workers up). */
export async function waitReady(baseUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gateway at ${baseUrl} not ready within ${timeoutMs} ms`);
}
