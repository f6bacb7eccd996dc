#!/usr/bin/env bash
# Builds the pinned LiveKit server into .cache/bin/livekit-server for the tests
# (tools/sim/livekit-process.ts). Idempotent: skips the build when the binary there
# already reports the pinned version.
#
# Why v1.13.5: it is the newest release that builds from the Go module proxy alone.
# v1.13.6 and later `replace` pion/webrtc, pion/dtls and pion/ice with LiveKit's
# forks (github.com/livekit/webrtc-pion/v4 ...-warp.N etc.) and need livekit/protocol
# pseudo-versions, and the proxy answers 403 "This module version is not available"
# for all of those. v1.13.5 has no replace directives, so plain `go install` works.
# The proxy is this machine's own (`go env GOPROXY`); no registry is named here.
set -euo pipefail

LIVEKIT_VERSION=1.13.5

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin/livekit-server"
want="livekit-server version $LIVEKIT_VERSION"
# A machine-wide copy outlives this checkout: CI clones afresh each run, and the build
# takes ~2 min. Only a binary that reports the pinned version is ever reused.
machine_cache="${XDG_CACHE_HOME:-$HOME/.cache}/voice-fleet/livekit-server-$LIVEKIT_VERSION"

if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null || true)" == "$want" ]]; then
  echo "build-livekit: $bin is already $LIVEKIT_VERSION, nothing to do"
  exit 0
fi
if [[ -x "$machine_cache" ]] && [[ "$("$machine_cache" --version 2>/dev/null || true)" == "$want" ]]; then
  mkdir -p "$root/.cache/bin"
  cp -f "$machine_cache" "$bin"
  echo "build-livekit: copied $LIVEKIT_VERSION from $machine_cache"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "build-livekit: error: go is not on PATH (Go >= 1.26 is needed)" >&2
  exit 1
fi

mkdir -p "$root/.cache/bin"
# Build into a scratch GOBIN and move into place only on success, so an interrupted
# build never leaves a half-written binary that a later run would trust.
tmp="$(mktemp -d "$root/.cache/livekit-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The configured proxies without `direct` (or `off`): never fall back to cloning
# repositories.
proxy="$(go env GOPROXY | tr ',|' '\n\n' | grep -v -x -e direct -e off -e '' | paste -sd, - || true)"
if [[ -z "$proxy" ]]; then
  echo "build-livekit: error: go env GOPROXY names no module proxy (only direct/off)" >&2
  exit 1
fi

pkg="github.com/livekit/livekit-server/cmd/server@v$LIVEKIT_VERSION"
echo "build-livekit: go install $pkg (from the configured Go module proxy; takes ~2 min on 2 cores)"
start=$SECONDS
# CGO_ENABLED=0: a static binary, and no C compiler needed (as upstream's Dockerfile).
if ! GOBIN="$tmp" GOPROXY="$proxy" CGO_ENABLED=0 go install "$pkg"; then
  echo "build-livekit: error: go install $pkg failed (go's error is above)" >&2
  exit 1
fi
mv -f "$tmp/server" "$bin"

got="$("$bin" --version 2>&1 || true)"
if [[ "$got" != "$want" ]]; then
  echo "build-livekit: error: built binary reports '$got', expected '$want'" >&2
  exit 1
fi
mkdir -p "$(dirname "$machine_cache")" && cp -f "$bin" "$machine_cache.tmp" && mv -f "$machine_cache.tmp" "$machine_cache" || true
echo "build-livekit: built $bin ($LIVEKIT_VERSION, $(du -h "$bin" | cut -f1), $((SECONDS - start)) s)"
