#!/usr/bin/env bash
# Builds the gateway's media process (media/, Go) into .cache/bin/voice-media: a static
# linux/amd64 binary (CGO off), so the droplet needs nothing beside it. Idempotent and
# cheap when nothing changed: Go's build cache does the work, and the binary is only
# replaced when its bytes differ. `npm run build` copies it to dist/bin/voice-media.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin/voice-media"

if ! command -v go >/dev/null; then
  echo "build-media: error: go is not on PATH (Go >= 1.24 is needed)" >&2
  exit 1
fi

# media/go.mod builds against a patched copy of LiveKit's Go SDK that this makes first.
bash "$root/scripts/prepare-livekit-sdk.sh"

mkdir -p "$root/.cache/bin"
tmp="$(mktemp "$root/.cache/bin/.voice-media.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# -trimpath and no VCS stamp: the same sources give the same bytes on any checkout.
(cd "$root/media" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
  go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" ./cmd/voice-media)
if [[ -x "$bin" ]] && cmp -s "$tmp" "$bin"; then
  echo "build-media: $bin is up to date"
else
  chmod 755 "$tmp"
  mv -f "$tmp" "$bin"
  echo "build-media: built $bin ($(du -h "$bin" | cut -f1))"
fi
