/**
 * How a cloud-config document is written: its files in `write_files` (gzip+base64 when that
 * is smaller, as cloud-init's `gz+b64` encoding allows), env files, and DigitalOcean's 64 KiB
 * cap on user data. render.ts says what goes in each droplet's document.
 */
import { stringify } from "yaml";
import { deterministicGzip } from "./bundle.ts";
import { guardBootcmd } from "./hardening.ts";

/** DigitalOcean refuses user data over 64 KiB. */
export const USER_DATA_LIMIT = 64 * 1024;

export interface FileSpec {
  readonly path: string;
  readonly content: string | Buffer;
  readonly owner?: string;
  readonly permissions?: string;
  /** Written after users exist (cloud-init's final stage), for files owned by our users. */
  readonly defer?: boolean;
}

/** Fails with a clear message when user data is over DigitalOcean's 64 KiB. */
export function assertUserDataFits(userData: string, what: string): void {
  const size = Buffer.byteLength(userData, "utf8");
  if (size > USER_DATA_LIMIT) {
    throw new Error(
      `${what} user data is ${size} bytes, over DigitalOcean's limit of ${USER_DATA_LIMIT} bytes (64 KiB). ` +
        "The gateway bundle is not in user data (first boot downloads it); look for a large setting or file " +
        "added to cloud-init/render.ts. Nothing was created.",
    );
  }
}

/** `KEY=VALUE` lines; `quote` for files bash sources and systemd reads (values in single quotes). */
export function envFile(
  entries: readonly (readonly [string, string | undefined])[],
  opts = { quote: false },
): string {
  const lines: string[] = [];
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    if (/[\r\n\0]/.test(value) || (opts.quote && value.includes("'"))) {
      throw new Error(`env file: the value of ${key} holds a character it may not`);
    }
    lines.push(opts.quote ? `${key}='${value}'` : `${key}=${value}`);
  }
  return `${lines.join("\n")}\n`;
}

export interface CloudConfigParts {
  readonly bootcmd?: readonly (readonly string[])[];
  readonly users: readonly Record<string, unknown>[];
  readonly packages: readonly string[];
  readonly files: readonly FileSpec[];
  readonly runcmd: readonly (readonly string[])[];
}

export function cloudConfig(parts: CloudConfigParts): string {
  const doc = {
    // Root keeps the SSH keys DigitalOcean injects (the firewall admits SSH from admin CIDRs only).
    disable_root: false,
    ssh_pwauth: false,
    // Every boot, first thing (before write_files and packages): the guard (hardening.ts).
    bootcmd: parts.bootcmd ?? guardBootcmd(),
    users: parts.users,
    package_update: true,
    packages: parts.packages,
    write_files: parts.files.map(writeFileEntry),
    runcmd: parts.runcmd,
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}

function writeFileEntry(f: FileSpec): Record<string, unknown> {
  const raw = typeof f.content === "string" ? Buffer.from(f.content, "utf8") : f.content;
  const packed = deterministicGzip(raw).toString("base64");
  const entry: Record<string, unknown> = { path: f.path };
  if (packed.length < raw.length && raw.length > 0) {
    entry.encoding = "gz+b64";
    entry.content = packed;
  } else if (isPlainText(raw)) {
    entry.content = raw.toString("utf8");
  } else {
    entry.encoding = "b64";
    entry.content = raw.toString("base64");
  }
  entry.owner = f.owner ?? "root:root";
  entry.permissions = f.permissions ?? "0644";
  if (f.defer) entry.defer = true;
  return entry;
}

function isPlainText(buf: Buffer): boolean {
  const text = buf.toString("utf8");
  return Buffer.from(text, "utf8").equals(buf) && !/[\0\r]/.test(text);
}
