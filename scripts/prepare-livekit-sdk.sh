#!/usr/bin/env bash
# LiveKit's Go server SDK as media/ builds it: the version media/go.mod requires, copied
# from Go's module cache (downloaded through the configured module proxy if missing, and
# checked against media/go.sum) and patched with media/patches/server-sdk-go/*.patch, into
# .cache/livekit-sdk/server-sdk-go, which media/go.mod's `replace` points at. Why it is
# patched: docs/media-process.md, "The patched SDK". Redone when the version or a patch
# changes; a no-op otherwise. scripts/build-media.sh runs it, so every build does.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="github.com/livekit/server-sdk-go/v2"
patches="$root/media/patches/server-sdk-go"
dest="$root/.cache/livekit-sdk/server-sdk-go"

# The require line (`<tab>module version`), not the replace line that names the module too.
version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$root/media/go.mod")"
if [[ -z "$version" ]]; then
  echo "prepare-livekit-sdk: error: media/go.mod requires no version of $module" >&2
  exit 1
fi
stamp="$version $(cat "$patches"/*.patch | sha256sum | cut -d' ' -f1)"

mkdir -p "$root/.cache/livekit-sdk"
exec 9>"$root/.cache/livekit-sdk/.lock"
flock 9
if [[ -f "$dest/.voice-fleet-stamp" && "$(cat "$dest/.voice-fleet-stamp")" == "$stamp" ]]; then
  exit 0
fi

src="$(cd "$root/media" && go mod download -json "$module@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src" || ! -f "$src/go.mod" ]]; then
  echo "prepare-livekit-sdk: error: go mod download $module@$version gave no module folder" >&2
  exit 1
fi
# Patched outside this repository: inside it, git apply would take the patch's paths as
# relative to the repository's top.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R "$src" "$work/sdk"
chmod -R u+w "$work/sdk"
for p in "$patches"/*.patch; do
  if ! git -C "$work/sdk" apply "$p"; then
    echo "prepare-livekit-sdk: error: $p does not apply to $module@$version" >&2
    exit 1
  fi
done
echo "$stamp" >"$work/sdk/.voice-fleet-stamp"
rm -rf "$dest"
mv "$work/sdk" "$dest"
echo "prepare-livekit-sdk: $module@$version patched into $dest"
