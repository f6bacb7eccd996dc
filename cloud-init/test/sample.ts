/** Rendered user data with fixed test values, for the cloud-init tests. */
import { DEFAULT_ECOSYSTEM } from "../../deploy/ecosystem.ts";
import {
  type ApiUserDataInput,
  bundleObjectKey,
  type GatewayUserDataInput,
  packBundle,
  readDistBundle,
  renderApiUserData,
  renderGatewayUserData,
} from "../render.ts";

import { DIST } from "./dist.ts";

export { DIST, ROOT } from "./dist.ts";

export const SECRETS = {
  mqttPassword: "3f9d0c2b7a4e1f6d8c5b2a9e7d4c1b0a3f6e9d2c5b8a",
  mqttSigningKey: "b71c4e9a2d6f0b3e8c1a5d7f9e2b4c6a8d0f1e3b5c7a9d2f4e6b8c0a1d3f5e7b",
  emqxDashboardPassword: "Zr8+Kq2/Wm5=Tx9pLc4vNb7y",
  livekitApiKey: "APIk3yExample",
  livekitApiSecret: "s3cr3tLiveKitValueForTests0123456789abcd",
};

/** dist/ packed as `pulumi up` packs it, and where a bucket would serve it. */
export const SAMPLE_BUNDLE = packBundle(readDistBundle(DIST));
export const SAMPLE_BUNDLE_REF = {
  url: `https://voice-fleet-test-bundles.fra1.digitaloceanspaces.com/${bundleObjectKey(SAMPLE_BUNDLE.sha256)}`,
  sha256: SAMPLE_BUNDLE.sha256,
};

export function gatewayInput(overrides: Partial<GatewayUserDataInput> = {}): GatewayUserDataInput {
  return {
    publicHost: "203.0.113.50",
    ecosystem: DEFAULT_ECOSYSTEM,
    bundle: SAMPLE_BUNDLE_REF,
    emqxImage: "emqx/emqx:5.8.9",
    logLevel: "info",
    livekitUrl: "wss://voice.livekit.cloud",
    secrets: SECRETS,
    ...overrides,
  };
}

export function sampleGatewayUserData(overrides: Partial<GatewayUserDataInput> = {}): string {
  return renderGatewayUserData(gatewayInput(overrides));
}

/** PEM-shaped stand-in for the cluster's CA (getDatabaseCa's `certificate`). */
export const SAMPLE_DATABASE_CA =
  "-----BEGIN CERTIFICATE-----\nTUlJ/c2FtcGxlIGNsdXN0ZXIgQ0E=\n-----END CERTIFICATE-----\n";

export const API_INPUT: ApiUserDataInput = {
  mqttHost: "203.0.113.50",
  databaseUrl:
    "postgresql://doadmin:pw%2Fx@private-db.example:25060/defaultdb?sslmode=verify-full&sslrootcert=/etc/manager-api/db-ca.crt",
  databaseCa: SAMPLE_DATABASE_CA,
  mqttSigningKey: SECRETS.mqttSigningKey,
  releaseToken: "ghp_exampleReleaseToken",
  apiRelease: { url: "https://releases.voice.test/api.tar.gz?a=1&b=2", sha256: "a".repeat(64) },
  webRelease: { url: "https://releases.voice.test/web.tar.gz", sha256: "b".repeat(64) },
  apiEntry: "index.js",
  apiPort: 8002,
  apiProxyPaths: ["/toy/", "/api/"],
  domain: "api.voice.test",
  alertEmail: "oncall@voice.test",
  nodeRuntime: {
    url: `https://voice-fleet-test-bundles.fra1.digitaloceanspaces.com/runtime/${"c".repeat(64)}.tar.gz`,
    sha256: "c".repeat(64),
  },
};

export function sampleApiUserData(overrides: Partial<ApiUserDataInput> = {}): string {
  return renderApiUserData({ ...API_INPUT, ...overrides });
}
