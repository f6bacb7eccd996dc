/**
 * What the gateway bundle carries besides dist/: the Node runtime and the production
 * node_modules, so that first boot installs nothing from npm and compiles nothing.
 *
 *   node/bin/node        the build machine's own Node (process.execPath, the binary the
 *                        tests ran on; deploy/node-runtime.ts checks it can travel)
 *   node_modules/...     `npm ci --omit=dev` of dist/'s runtime package, built here
 *                        (deploy/runtime-stage.ts), PM2 included
 *
 * The droplet runs `$INSTALL_DIR/node/bin/node` and `$INSTALL_DIR/node_modules/pm2/bin/pm2`
 * (cloud-init/gateway/bootstrap.sh puts both folders first on PATH).
 */
import { lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { nodePrefix } from "../deploy/node-runtime.ts";
import { RUNTIME_CACHE_DIR, stageRuntime, stageTools } from "../deploy/runtime-stage.ts";
import {
  BUNDLE_CACHE_DIR,
  type BundleFile,
  readDistBundle,
  type StoredBundle,
  storeBundle,
} from "./bundle.ts";

/** Where the bundle keeps Node, relative to its root. */
export const BUNDLED_NODE = "node/bin/node";
/** PM2's command, relative to the bundle root. */
export const BUNDLED_PM2 = "node_modules/pm2/bin/pm2";

/**
 * Every file of the gateway bundle: dist/ (readDistBundle), the Node runtime, and the
 * node_modules staged for it under `runtimeCacheDir`.
 */
export function readGatewayBundle(distDir: string, runtimeCacheDir: string): BundleFile[] {
  const dist = readDistBundle(distDir);
  const staged = stageRuntime(distDir, runtimeCacheDir);
  return [
    ...dist,
    { path: BUNDLED_NODE, content: readFileSync(process.execPath), mode: 0o755 },
    ...readTree(path.join(staged, "node_modules"), "node_modules"),
  ];
}

/**
 * The files under `dir`, keeping x bits. Left out: `.bin` folders and other symbolic links
 * (npm's command links; the droplet calls PM2 by its real path) and npm's own
 * `.package-lock.json` (a cache of the tree, rewritten by npm at will).
 */
export function readTree(dir: string, prefix: string): BundleFile[] {
  const out: BundleFile[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = `${prefix}/${name}`;
    const st = lstatSync(full);
    if (st.isSymbolicLink() || name === ".bin" || rel === "node_modules/.package-lock.json") continue;
    if (st.isDirectory()) out.push(...readTree(full, rel));
    else if (st.isFile()) {
      out.push({ path: rel, content: readFileSync(full), mode: statSync(full).mode & 0o111 ? 0o755 : 0o644 });
    }
  }
  return out;
}

/**
 * The gateway bundle as `pulumi up` uploads it: dist/ with its runtime, staged under
 * `<root>/.cache/runtime` and packed under `<root>/.cache/bundles`.
 */
export function storeGatewayBundle(distDir: string, root: string): StoredBundle {
  return storeBundle(
    readGatewayBundle(distDir, path.join(root, RUNTIME_CACHE_DIR)),
    path.join(root, BUNDLE_CACHE_DIR),
  );
}

/**
 * `bin/npm` of the official layout is a link to npm-cli.js; the packer packs no links,
 * so the object has this script in its place (npm's own bin/npm script expects to be
 * reached through that link).
 */
const NPM_WRAPPER = `#!/bin/sh
exec "$(dirname "$0")/node" "$(dirname "$0")/../lib/node_modules/npm/bin/npm-cli.js" "$@"
`;

/**
 * The Node runtime object of the API droplet (manager-api runs on Node, under PM2): the
 * same Node as the gateway bundle in its official layout under `node/` (bin/node, the
 * headers in include/node for manager-api's native addons, npm in lib/node_modules/npm
 * for manager-api's own `npm ci`), and PM2 under `node_modules/`. It changes only with
 * Node or PM2, so a new gateway bundle does not replace the API droplet.
 */
export function storeNodeRuntime(root: string): StoredBundle {
  const cache = path.join(root, RUNTIME_CACHE_DIR);
  const prefix = nodePrefix(process.execPath);
  const tools = stageTools(root, cache);
  const files = [
    { path: BUNDLED_NODE, content: readFileSync(process.execPath), mode: 0o755 },
    { path: "node/bin/npm", content: Buffer.from(NPM_WRAPPER), mode: 0o755 },
    ...readTree(path.join(prefix, "include/node"), "node/include/node"),
    ...readTree(path.join(prefix, "lib/node_modules/npm"), "node/lib/node_modules/npm"),
    ...readTree(path.join(tools, "node_modules"), "node_modules"),
  ];
  return storeBundle(files, path.join(root, BUNDLE_CACHE_DIR), "runtime");
}
