/**
 * The gateway bundle as cloud-init ships it: the files of `dist/` (what `npm run build`
 * produced and the local box runs), each carried in user data gzip+base64 and written by
 * cloud-init under /opt/voice-gateway. `extractBundle` undoes exactly that, so a test can
 * unpack rendered user data and run what a droplet would run.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { parse } from "yaml";

/** Where the gateway droplet installs the bundle (owned by user `gateway`). */
export const INSTALL_DIR = "/opt/voice-gateway";

export interface BundleFile {
  /** Path relative to the bundle root, with forward slashes (`gateway/main.js`). */
  readonly path: string;
  readonly content: Buffer;
}

/** Files of dist/ that go to the droplet. The ecosystem file is rendered from the stack config. */
const TOP_LEVEL = [".npmrc", "package.json", "package-lock.json"];

/**
 * Reads the bundle from `distDir`. Source maps stay behind (they only cost user-data
 * bytes); the ecosystem file is left out because infra renders it from the instance count.
 */
export function readDistBundle(distDir: string): BundleFile[] {
  const required = [...TOP_LEVEL, "gateway/main.js"];
  const missing = required.filter((f) => !isFile(path.join(distDir, f)));
  if (missing.length > 0) {
    throw new Error(
      `the gateway bundle is missing from ${distDir} (${missing.join(", ")}): run npm run build first`,
    );
  }
  const files: BundleFile[] = TOP_LEVEL.map((f) => ({
    path: f,
    content: readFileSync(path.join(distDir, f)),
  }));
  for (const rel of walk(path.join(distDir, "gateway"))) {
    if (rel.endsWith(".js")) {
      files.push({ path: `gateway/${rel}`, content: readFileSync(path.join(distDir, "gateway", rel)) });
    }
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

export interface UserDataFile {
  readonly path: string;
  readonly content: Buffer;
  readonly owner: string;
  readonly permissions: string;
  readonly defer: boolean;
}

interface WriteFileEntry {
  path?: unknown;
  content?: unknown;
  encoding?: unknown;
  owner?: unknown;
  permissions?: unknown;
  defer?: unknown;
}

/** Decodes every `write_files` entry of a rendered cloud-config, as cloud-init would write it. */
export function readUserDataFiles(userData: string): Map<string, UserDataFile> {
  const doc = parse(userData) as { write_files?: WriteFileEntry[] } | null;
  const files = new Map<string, UserDataFile>();
  for (const entry of doc?.write_files ?? []) {
    if (typeof entry.path !== "string" || typeof entry.content !== "string") {
      throw new Error("user data: a write_files entry lacks path or content");
    }
    files.set(entry.path, {
      path: entry.path,
      content: decode(entry.content, entry.encoding),
      owner: typeof entry.owner === "string" ? entry.owner : "root:root",
      permissions: typeof entry.permissions === "string" ? entry.permissions : "0644",
      defer: entry.defer === true,
    });
  }
  return files;
}

/**
 * Writes the bundle carried by gateway user data into `destDir`, laid out as under
 * /opt/voice-gateway on the droplet. Returns the relative paths written, sorted.
 */
export function extractBundle(userData: string, destDir: string): string[] {
  const written: string[] = [];
  for (const file of readUserDataFiles(userData).values()) {
    if (!file.path.startsWith(`${INSTALL_DIR}/`)) continue;
    const rel = file.path.slice(INSTALL_DIR.length + 1);
    const target = path.join(destDir, rel);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.content);
    written.push(rel);
  }
  return written.sort();
}

function decode(content: string, encoding: unknown): Buffer {
  switch (encoding) {
    case undefined:
    case "text/plain":
      return Buffer.from(content, "utf8");
    case "b64":
    case "base64":
      return Buffer.from(content, "base64");
    case "gz+b64":
    case "gzip+base64":
    case "gz+base64":
    case "gzip+b64":
      return gunzipSync(Buffer.from(content, "base64"));
    default:
      throw new Error(`user data: unsupported write_files encoding ${String(encoding)}`);
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function walk(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(full).isDirectory()) out.push(...walk(full, rel));
    else out.push(rel);
  }
  return out;
}
