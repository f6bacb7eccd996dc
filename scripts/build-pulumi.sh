#!/usr/bin/env bash
# Builds the Pulumi CLI and the Node.js language host of infra/test/runbook-recovery.test.ts
# into .cache/pulumi/bin. Idempotent: the CLI is rebuilt only when tools/pulumi/go.mod or
# go.sum changed (or the binary there is not the pinned version); the language host is
# our own small program, rebuilt by Go's build cache in seconds and replaced only when its
# bytes differ.
#
# Why a module of our own (tools/pulumi) and not `go install ...cmd/pulumi@v3.276.0`:
# pulumi/pkg/v3's go.mod has `replace github.com/pulumi/pulumi/sdk/v3 => ../sdk`, which
# `go install pkg@version` refuses. Our go.mod requires pkg/v3 and sdk/v3 at the same
# release (the published sdk/v3 is what ../sdk is at that tag) and copies pkg/v3's other
# replace; go.sum pins every dependency. The proxy is this machine's own (`go env
# GOPROXY`); no registry is named here. Pulumi's own Node.js language host is a separate
# module the proxy does not serve (403), hence tools/pulumi/language-nodejs.
#
# `npm test` runs it (scripts/prepare.mjs): the cold build takes 5 to 9 minutes on 2 cores,
# once per machine (the copy under ~/.cache/voice-fleet), seconds after that.
set -euo pipefail

PULUMI_VERSION=3.276.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/tools/pulumi"
out="$root/.cache/pulumi/bin"
export PULUMI_SKIP_UPDATE_CHECK=true
# The CLI's inputs: the pinned version and every dependency's hash.
key="$PULUMI_VERSION-$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)"
# A machine-wide copy outlives this checkout: CI clones afresh each run, and the cold build
# takes minutes. Only a binary that reports the pinned version is ever reused.
machine_cache="${XDG_CACHE_HOME:-$HOME/.cache}/voice-fleet/pulumi-$key"

if ! command -v go >/dev/null; then
  echo "build-pulumi: error: go is not on PATH (Go >= 1.26 is needed)" >&2
  exit 1
fi
mkdir -p "$out"
# The configured proxies without `direct` (or `off`): never fall back to cloning repositories.
proxy="$(go env GOPROXY | tr ',|' '\n\n' | grep -v -x -e direct -e off -e '' | paste -sd, - || true)"
if [[ -z "$proxy" ]]; then
  echo "build-pulumi: error: go env GOPROXY names no module proxy (only direct/off)" >&2
  exit 1
fi
export GOPROXY="$proxy" GOFLAGS=-mod=readonly CGO_ENABLED=0

cli_ok() { [[ -x "$1" ]] && [[ "$("$1" version 2>/dev/null || true)" == "v$PULUMI_VERSION" ]]; }

if cli_ok "$out/pulumi" && [[ "$(cat "$out/pulumi.key" 2>/dev/null || true)" == "$key" ]]; then
  echo "build-pulumi: $out/pulumi is already v$PULUMI_VERSION ($key), nothing to do"
elif cli_ok "$machine_cache"; then
  # Through a scratch file, as the build below: an interrupted copy is never in place.
  cp -f "$machine_cache" "$out/.pulumi.copy.$$" && mv -f "$out/.pulumi.copy.$$" "$out/pulumi"
  echo "$key" >"$out/pulumi.key"
  echo "build-pulumi: copied v$PULUMI_VERSION from $machine_cache"
else
  echo "build-pulumi: go build the Pulumi CLI v$PULUMI_VERSION (from the configured Go module proxy; minutes on 2 cores)"
  start=$SECONDS
  # Build into a scratch file and move into place only on success, so an interrupted build
  # never leaves a half-written binary that a later run would trust.
  tmp="$(mktemp "$out/.pulumi.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  # CGO_ENABLED=0 and -s -w as Pulumi's release builds; the version as its Makefile stamps it.
  (cd "$mod" && go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  chmod 755 "$tmp"
  if ! cli_ok "$tmp"; then
    echo "build-pulumi: error: the built CLI reports '$("$tmp" version 2>&1 || true)', expected v$PULUMI_VERSION" >&2
    exit 1
  fi
  mv -f "$tmp" "$out/pulumi"
  echo "$key" >"$out/pulumi.key"
  # A scratch name of this process's own: two checkouts building at once do not collide.
  mkdir -p "$(dirname "$machine_cache")" && cp -f "$out/pulumi" "$machine_cache.tmp.$$" &&
    mv -f "$machine_cache.tmp.$$" "$machine_cache" || rm -f "$machine_cache.tmp.$$"
  echo "build-pulumi: built $out/pulumi (v$PULUMI_VERSION, $(du -h "$out/pulumi" | cut -f1), $((SECONDS - start)) s)"
fi

# The language host: the engine looks for pulumi-language-nodejs next to the CLI.
host_tmp="$(mktemp "$out/.pulumi-language-nodejs.XXXXXX")"
trap 'rm -f "$host_tmp" ${tmp:+"$tmp"}' EXIT
(cd "$mod" && go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X main.version=$PULUMI_VERSION" -o "$host_tmp" ./language-nodejs)
if [[ -x "$out/pulumi-language-nodejs" ]] && cmp -s "$host_tmp" "$out/pulumi-language-nodejs"; then
  echo "build-pulumi: $out/pulumi-language-nodejs is up to date"
else
  chmod 755 "$host_tmp"
  mv -f "$host_tmp" "$out/pulumi-language-nodejs"
  echo "build-pulumi: built $out/pulumi-language-nodejs"
fi
