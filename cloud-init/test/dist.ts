/**
 * The bundle the tests check: dist/, as the local box runs it. A fresh clone has none
 * (dist/ is not committed), so it is built once here the way `npm run build` builds it.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "../../scripts/build.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DIST = path.join(ROOT, "dist");

if (!existsSync(path.join(DIST, "gateway", "main.js"))) await buildBundle(DIST);
