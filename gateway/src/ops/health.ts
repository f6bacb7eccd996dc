/**
 * Health and metrics over HTTP, per instance: `GET /health` (JSON for people and
 * scripts), `GET /livez`, `GET /readyz` (broker connected and subscribed, workers alive,
 * not draining), `GET /metrics` (Prometheus). Binds to HEALTH_BIND, loopback by default.
 */
import { createServer, type Server } from "node:http";
import type { HealthBody } from "./health-body.ts";
import type { GatewayMetrics } from "./metrics.ts";

export interface HealthSnapshot {
  readonly ready: boolean;
  readonly body: Omit<HealthBody, "ready">;
}

export interface HealthSource {
  snapshot(): HealthSnapshot;
  readonly metrics: GatewayMetrics;
}

export function startHealthServer(source: HealthSource, port: number, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (req.method !== "GET") return json(405, { error: "GET only" });
    switch (path) {
      case "/health": {
        const snap = source.snapshot();
        const body: HealthBody = { ready: snap.ready, ...snap.body };
        return json(200, body);
      }
      case "/livez":
        return json(200, { live: true });
      case "/readyz": {
        const snap = source.snapshot();
        return json(snap.ready ? 200 : 503, { ready: snap.ready });
      }
      case "/metrics":
        source.metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": source.metrics.registry.contentType });
            res.end(text);
          },
          (err: Error) => json(500, { error: err.message }),
        );
        return;
      default:
        return json(404, { error: "not found", paths: ["/health", "/livez", "/readyz", "/metrics"] });
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
