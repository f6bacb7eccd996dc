/** Stack settings for the config tests: prod's file with real-looking values, and its problems. */
import assert from "node:assert/strict";
import { ConfigError, parseSettings } from "../config.ts";
import { readStackFile } from "../stack-file.ts";
import { PROD_FILE } from "./fleet-harness.ts";

export const prod = readStackFile(PROD_FILE).config;
export const from =
  (values: Record<string, string | undefined>) =>
  (key: string): string | undefined =>
    values[key];

/** Real-looking values for every placeholder in Pulumi.prod.yaml. */
export const filledIn: Record<string, string> = {
  ...prod,
  adminCidrs: JSON.stringify(["81.2.69.160/32"]),
  sshKeyFingerprints: JSON.stringify(["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"]),
  alertEmail: "oncall@voice.test",
  apiReleaseUrl: "https://releases.voice.test/api.tar.gz",
  apiReleaseSha256: "a".repeat(64),
  webReleaseUrl: "https://releases.voice.test/web.tar.gz",
  webReleaseSha256: "b".repeat(64),
};

export function problemsOf(values: Record<string, string | undefined>): string[] {
  try {
    parseSettings(from(values));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail("expected a ConfigError");
}
