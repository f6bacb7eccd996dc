/**
 * The gateway bundle as the droplet receives it: the files of `dist/` (what `npm run build`
 * produced and the local box runs) packed into one deterministic .tar.gz, named by its
 * SHA-256. `pulumi up` uploads it as an object (infra/bundle-store.ts); user data carries
 * only its URL and hash, and first boot downloads, checks and unpacks it
 * (gateway/fetch-bundle.sh). So the bundle no longer counts against DigitalOcean's 64 KiB
 * of user data, and a binary (the media process) can travel with it.
 *
 * Packing is pure (same files, same bytes, same hash on every machine that has the same
 * zlib); reading dist/ and writing the archive are the two thin I/O functions at the end.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { parse } from "yaml";

/** Where the gateway droplet installs the bundle (owned by user `gateway`). */
export const INSTALL_DIR = "/opt/voice-gateway";
/** Where the API droplet unpacks the Node runtime object (cloud-init/api/bootstrap.sh). */
export const RUNTIME_INSTALL_DIR = "/opt/voice-fleet-node";

export interface BundleFile {
  /** Path relative to the bundle root, with forward slashes (`gateway/main.js`). */
  readonly path: string;
  readonly content: Buffer;
  /** Unix mode; 0o755 for executables (the media binary), 0o644 otherwise. */
  readonly mode?: number;
}

/** The packed bundle: what is uploaded, and what user data names. */
export interface BundleArtifact {
  readonly bytes: Buffer;
  /** Lowercase hex SHA-256 of `bytes`: the object's name and what first boot checks. */
  readonly sha256: string;
  /** Hex MD5 of `bytes`: the ETag Spaces reports for a single-part upload (the object's `etag`). */
  readonly md5: string;
  readonly files: number;
  readonly unpackedBytes: number;
}

/** The artifact written to disk, for the object upload (`source`). */
export interface StoredBundle extends BundleArtifact {
  readonly file: string;
  /** Milliseconds spent packing; 0 when the same files had been packed before (reused). */
  readonly packMs: number;
}

/** Where `pulumi up` and `npm run plan` keep packed bundles, relative to the repository root (git-ignored). */
export const BUNDLE_CACHE_DIR = ".cache/bundles";

/** Files of dist/ that must be there; everything else in dist/ travels too. */
const REQUIRED = [".npmrc", "package.json", "package-lock.json", "gateway/main.js"];
/** Left behind: source maps (debugging only), and the ecosystem file, which user data renders from the stack's instance count. */
const LEFT_OUT = (rel: string): boolean => rel.endsWith(".map") || rel === "ecosystem.config.cjs";

/** What an archive is: the gateway bundle, or the Node runtime object of the API droplet. */
export type BundleKind = "gateway" | "runtime";

/** The object key of a bundle: content-addressed, so a new bundle is a new object. */
export function bundleObjectKey(sha256: string, kind: BundleKind = "gateway"): string {
  return `${kind}/${sha256}.tar.gz`;
}

/**
 * gzip level of the bundle. Level 6: with the Node binary and node_modules inside, level 9
 * takes several times as long for about one percent (docs/runbook.md, "How the gateway gets its code").
 */
const BUNDLE_GZIP_LEVEL = 6;

/** Packs the files into a deterministic .tar.gz. Pure. */
export function packBundle(files: readonly BundleFile[]): BundleArtifact {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const blocks: Buffer[] = [];
  for (const f of sorted) {
    blocks.push(tarHeader(f.path, f.content.length, f.mode ?? 0o644), f.content, padding(f.content.length));
  }
  blocks.push(Buffer.alloc(1024));
  const bytes = deterministicGzip(Buffer.concat(blocks), BUNDLE_GZIP_LEVEL);
  return {
    bytes,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    md5: createHash("md5").update(bytes).digest("hex"),
    files: sorted.length,
    unpackedBytes: sorted.reduce((n, f) => n + f.content.length, 0),
  };
}

/**
 * gzip with a fixed header: no mtime, OS byte "Unix", so the same input gives the same
 * bytes on every machine zlib compresses alike (a changed hash replaces the droplet).
 */
export function deterministicGzip(data: Buffer, level = 9): Buffer {
  const out = gzipSync(data, { level });
  out.writeUInt32LE(0, 4);
  out[9] = 3;
  return out;
}

/**
 * A ustar header: owner root, mtime 0, so only names, modes and contents make the hash.
 * Names over 100 bytes (deep in node_modules) split at a `/` into ustar's 155-byte prefix.
 */
function tarHeader(name: string, size: number, mode: number): Buffer {
  if (!/^[A-Za-z0-9._/@+~ -]+$/.test(name) || name.split("/").includes("..") || name.startsWith("/")) {
    throw new Error(`bundle: cannot pack ${JSON.stringify(name)} (plain relative names only)`);
  }
  const [prefix, base] = splitName(name);
  const h = Buffer.alloc(512);
  const put = (text: string, at: number, len: number): void => {
    h.write(text, at, len, "ascii");
  };
  const octal = (n: number, len: number): string => `${n.toString(8).padStart(len - 1, "0")}\0`;
  put(base, 0, 100);
  put(octal(mode & 0o7777, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  put("root", 265, 32);
  put("root", 297, 32);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return h;
}

/** [prefix, name] of a ustar entry: name up to 100 bytes, prefix up to 155. */
function splitName(name: string): [string, string] {
  if (name.length <= 100) return ["", name];
  for (let i = name.indexOf("/"); i !== -1; i = name.indexOf("/", i + 1)) {
    if (i <= 155 && name.length - i - 1 <= 100) return [name.slice(0, i), name.slice(i + 1)];
  }
  throw new Error(`bundle: cannot pack ${JSON.stringify(name)} (longer than ustar allows)`);
}

function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/**
 * Reads the bundle from `distDir`: every file except source maps and the ecosystem file
 * (infra renders that one from the instance count), executables keeping their x bit.
 */
export function readDistBundle(distDir: string): BundleFile[] {
  const missing = REQUIRED.filter((f) => !isFile(path.join(distDir, f)));
  if (missing.length > 0) {
    throw new Error(
      `the gateway bundle is missing from ${distDir} (${missing.join(", ")}): run npm run build first`,
    );
  }
  return walk(distDir)
    .filter((rel) => !LEFT_OUT(rel))
    .map((rel) => {
      const full = path.join(distDir, rel);
      return {
        path: rel,
        content: readFileSync(full),
        mode: statSync(full).mode & 0o111 ? 0o755 : 0o644,
      };
    });
}

/**
 * Packs the files and writes the archive as `<outDir>/<kind>-<sha256>.tar.gz` (written
 * once: the name is the content). Packing the runtime takes seconds, so the same files
 * (names, modes, contents) map to the archive already packed (`<outDir>/by-input/`).
 * Returns it with its path, for the object upload.
 */
export function storeBundle(
  files: readonly BundleFile[],
  outDir: string,
  kind: BundleKind = "gateway",
): StoredBundle {
  const inputKey = bundleInputKey(files);
  const index = path.join(outDir, "by-input", `${inputKey}.json`);
  const known = readKnown(index);
  if (known) {
    const file = path.join(outDir, `${kind}-${known.sha256}.tar.gz`);
    if (isFile(file)) return { ...known, bytes: readFileSync(file), file, packMs: 0 };
  }
  const started = performance.now();
  const artifact = packBundle(files);
  const packMs = Math.round(performance.now() - started);
  mkdirSync(path.dirname(index), { recursive: true });
  const file = path.join(outDir, `${kind}-${artifact.sha256}.tar.gz`);
  if (!isFile(file)) atomicWrite(file, artifact.bytes);
  const { bytes: _bytes, ...meta } = artifact;
  atomicWrite(index, Buffer.from(JSON.stringify(meta)));
  return { ...artifact, file, packMs };
}

/** A hash of what goes into the archive: each file's name, mode and content hash. Pure. */
export function bundleInputKey(files: readonly BundleFile[]): string {
  const h = createHash("sha256").update(`ustar gzip-${BUNDLE_GZIP_LEVEL}\n`);
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    h.update(`${f.path}\0${f.mode ?? 0o644}\0${createHash("sha256").update(f.content).digest("hex")}\n`);
  }
  return h.digest("hex");
}

function readKnown(index: string): Omit<BundleArtifact, "bytes"> | undefined {
  try {
    const m = JSON.parse(readFileSync(index, "utf8")) as Record<string, unknown>;
    if (typeof m.sha256 === "string" && /^[0-9a-f]{64}$/.test(m.sha256) && typeof m.md5 === "string") {
      return {
        sha256: m.sha256,
        md5: m.md5,
        files: Number(m.files),
        unpackedBytes: Number(m.unpackedBytes),
      };
    }
  } catch {
    // No index yet, or a torn one: pack again.
  }
  return undefined;
}

function atomicWrite(file: string, bytes: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
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
