/**
 * The bundle the tests check: dist/, as the local box runs it, rebuilt from the current
 * source the way `npm run build` builds it (esbuild takes well under a second), so a
 * stale dist/ from an earlier build can never pass for the code under test.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "../../scripts/build.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DIST = path.join(ROOT, "dist");

await buildBundle(DIST);
