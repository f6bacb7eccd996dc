/**
 * Builds the deployable gateway bundle into dist/:
 *   dist/gateway/main.js          the gateway (esbuild, our code only; npm packages stay external)
 *   dist/gateway/opus-worker.js   the Opus worker thread entry
 *   dist/gateway/verifier.js      the device verifier for EMQX (PM2 app device-auth)
 *   dist/ecosystem.config.cjs     PM2 apps (deploy/ecosystem.ts)
 *   dist/package.json             runtime dependencies only, for `npm ci --omit=dev`
 *   dist/package-lock.json        the root lockfile, pruned to those dependencies
 *   dist/bin/voice-media          the LiveKit media process (Go, static linux/amd64; scripts/build-media.sh)
 * The local box runs exactly this; cloud-init installs exactly this.
 */
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { DEFAULT_ECOSYSTEM, renderEcosystem } from "../deploy/ecosystem.ts";
import { pruneLockfile, runtimeManifest } from "../deploy/runtime-package.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist");

export async function buildBundle(outDir: string = out): Promise<void> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(path.join(outDir, "gateway"), { recursive: true });
  await build({
    entryPoints: {
      main: path.join(root, "gateway/src/main.ts"),
      "opus-worker": path.join(root, "gateway/src/audio/opus-worker.ts"),
      // Loaded by main.js only when LiveKit is configured (see loadLiveKit in app.ts).
      livekit: path.join(root, "gateway/src/agent/livekit/factory.ts"),
      // The device verifier, PM2 app `device-auth` (deploy/ecosystem.ts).
      verifier: path.join(root, "gateway/src/auth/verifier-main.ts"),
    },
    outdir: path.join(outDir, "gateway"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    // Minified: a smaller bundle object to upload and download (cloud-init/bundle.ts).
    minify: true,
    sourcemap: "linked",
    logLevel: "warning",
    outExtension: { ".js": ".js" },
  });
  const pkg = JSON.parse(await readFile(path.join(root, "package.json"), "utf8"));
  const lock = JSON.parse(await readFile(path.join(root, "package-lock.json"), "utf8"));
  const manifest = runtimeManifest(pkg);
  await writeFile(path.join(outDir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(
    path.join(outDir, "package-lock.json"),
    `${JSON.stringify(pruneLockfile(lock, manifest), null, 2)}\n`,
  );
  await writeFile(path.join(outDir, "ecosystem.config.cjs"), renderEcosystem(DEFAULT_ECOSYSTEM));
  // npm reads allowScripts from package.json; the headers to build against come from the
  // environment of the staging install (deploy/runtime-stage.ts), never from the droplet.
  await writeFile(path.join(outDir, ".npmrc"), "audit=false\nfund=false\n");
  // The media process binary (~21 MB) travels in the bundle object, never in user data.
  await mkdir(path.join(outDir, "bin"), { recursive: true });
  await copyFile(buildMedia(), path.join(outDir, "bin/voice-media"));
}

/** Runs scripts/build-media.sh (Go's cache makes it cheap when nothing changed). */
export function buildMedia(): string {
  const res = spawnSync("bash", [path.join(root, "scripts/build-media.sh")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (res.status !== 0) throw new Error("scripts/build-media.sh failed (see the output above)");
  return path.join(root, ".cache/bin/voice-media");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildBundle();
  console.log(`built ${path.relative(process.cwd(), out) || "."}/`);
}
