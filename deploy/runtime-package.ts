/**
 * The runtime package of the gateway bundle: package.json with only the dependencies the
 * gateway needs at run time (and PM2, the droplet's process manager, at the version the
 * local box runs), and the root lockfile pruned to exactly those packages. The build
 * installs them with `npm ci --omit=dev` into a staging folder (deploy/runtime-stage.ts)
 * and the bundle carries that node_modules: the droplet installs nothing from npm.
 */

interface PackageJson {
  name?: string;
  version?: string;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  allowScripts?: Record<string, boolean>;
}

interface LockPackage {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  [key: string]: unknown;
}

interface Lockfile {
  name?: string;
  version?: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockPackage>;
}

export interface RuntimeManifest {
  name: string;
  version: string;
  private: true;
  type: "module";
  engines: Record<string, string>;
  dependencies: Record<string, string>;
  allowScripts: Record<string, boolean>;
}

/** Run-time dependencies of the bundle besides the gateway's own: the process manager. */
const BUNDLED_TOOLS = ["pm2"];

export function runtimeManifest(pkg: PackageJson): RuntimeManifest {
  const dependencies = { ...(pkg.dependencies ?? {}) };
  for (const tool of BUNDLED_TOOLS) {
    const version = pkg.devDependencies?.[tool] ?? pkg.dependencies?.[tool];
    if (!version)
      throw new Error(`package.json pins no ${tool}: the bundle carries it as its process manager`);
    dependencies[tool] = version;
  }
  const allowScripts: Record<string, boolean> = {};
  for (const [name, allowed] of Object.entries(pkg.allowScripts ?? {})) {
    if (allowed && name in dependencies) allowScripts[name] = true;
  }
  return {
    name: `${pkg.name ?? "gateway"}-runtime`,
    version: pkg.version ?? "0.0.0",
    private: true,
    type: "module",
    engines: { ...(pkg.engines ?? {}) },
    dependencies,
    allowScripts,
  };
}

/**
 * The manifest of the Node runtime object the API droplet gets (cloud-init/bundle-runtime.ts):
 * only the bundled tools (PM2), at the versions of the gateway's manifest.
 */
export function toolsManifest(pkg: PackageJson): RuntimeManifest {
  const full = runtimeManifest(pkg);
  return {
    ...full,
    name: `${pkg.name ?? "gateway"}-node-runtime`,
    dependencies: Object.fromEntries(BUNDLED_TOOLS.map((t) => [t, full.dependencies[t] as string])),
    allowScripts: {},
  };
}

/**
 * Keeps the lockfile entries reachable from the manifest's dependencies, resolving each
 * dependency the way Node does: the nearest `node_modules/<name>` walking up from the
 * dependent package's folder.
 */
export function pruneLockfile(lock: Lockfile, manifest: RuntimeManifest): Lockfile {
  if (lock.lockfileVersion < 2) throw new Error("lockfile v2 or v3 required (npm 7+)");
  const kept = new Set<string>();
  const queue: string[] = [];
  const visit = (fromFolder: string, dep: string, optional: boolean): void => {
    const resolved = resolveInLock(lock, fromFolder, dep);
    if (!resolved) {
      if (optional) return; // an optional dependency for another platform
      throw new Error(`lockfile has no entry for ${dep} (needed from "${fromFolder || "root"}")`);
    }
    if (!kept.has(resolved)) {
      kept.add(resolved);
      queue.push(resolved);
    }
  };
  for (const dep of Object.keys(manifest.dependencies)) visit("", dep, false);
  while (queue.length > 0) {
    const folder = queue.shift() as string;
    const entry = lock.packages[folder];
    if (!entry) continue;
    for (const dep of Object.keys(entry.dependencies ?? {})) visit(folder, dep, false);
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) visit(folder, dep, true);
    for (const dep of Object.keys(entry.peerDependencies ?? {})) visit(folder, dep, true);
  }
  const packages: Record<string, LockPackage> = {
    "": {
      name: manifest.name,
      version: manifest.version,
      dependencies: manifest.dependencies,
      engines: manifest.engines,
    },
  };
  for (const folder of [...kept].sort()) {
    const { dev: _dev, ...entry } = lock.packages[folder] as LockPackage;
    packages[folder] = entry;
  }
  return {
    name: manifest.name,
    version: manifest.version,
    lockfileVersion: lock.lockfileVersion,
    requires: true,
    packages,
  };
}

function resolveInLock(lock: Lockfile, fromFolder: string, dep: string): string | undefined {
  let folder = fromFolder;
  for (;;) {
    const candidate = folder ? `${folder}/node_modules/${dep}` : `node_modules/${dep}`;
    if (lock.packages[candidate]) return candidate;
    if (!folder) return undefined;
    const idx = folder.lastIndexOf("/node_modules/");
    folder = idx === -1 ? "" : folder.slice(0, idx);
  }
}
