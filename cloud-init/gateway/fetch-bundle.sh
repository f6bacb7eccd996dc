#!/usr/bin/env bash
# Installs the gateway bundle (dist/ of `npm run build`, packed by cloud-init/bundle.ts and
# uploaded by `pulumi up`) on the gateway droplet. Run as root by voice-gateway-bootstrap
# before anything is started. Reads from /etc/voice-gateway/bootstrap.env (or the env):
#   BUNDLE_URL     where the object is (content-addressed: gateway/<sha256>.tar.gz)
#   BUNDLE_SHA256  the hash it must have
#   INSTALL_DIR    where it is unpacked (/opt/voice-gateway)
# A download that fails or a hash that differs stops here with exit 1 and a loud line in
# /var/log/cloud-init-output.log: nothing is unpacked, and bootstrap (set -e) starts nothing.
set -euo pipefail
settings=${BOOTSTRAP_ENV:-/etc/voice-gateway/bootstrap.env}
# shellcheck source=/dev/null
if [[ -r $settings ]]; then source "$settings"; fi
log() { echo "[voice-gateway-fetch-bundle $(date -u +%FT%TZ)] $*"; }
: "${BUNDLE_URL:?BUNDLE_URL is not set}" "${BUNDLE_SHA256:?BUNDLE_SHA256 is not set}"
: "${INSTALL_DIR:?INSTALL_DIR is not set}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
archive="$tmp/bundle.tar.gz"

# Retries cover the first seconds of networking on a new droplet and transient errors
# (all errors, a 404 too: a just-uploaded object may take a moment to be served).
if ! curl -fsS --retry "${BUNDLE_RETRIES:-10}" --retry-delay 3 --retry-all-errors --connect-timeout 10 --max-time 600 \
  -o "$archive" "$BUNDLE_URL"; then
  log "BUNDLE DOWNLOAD FAILED from ${BUNDLE_URL}: nothing installed, first boot stops here"
  exit 1
fi
actual=$(sha256sum "$archive" | cut -d' ' -f1)
if [[ $actual != "$BUNDLE_SHA256" ]]; then
  log "BUNDLE HASH MISMATCH: expected ${BUNDLE_SHA256}, got ${actual} ($(stat -c %s "$archive") bytes from ${BUNDLE_URL}): nothing installed, first boot stops here"
  exit 1
fi

install -d -m 0755 "$INSTALL_DIR"
tar -xzf "$archive" -C "$INSTALL_DIR" --no-same-owner
log "bundle ${BUNDLE_SHA256} installed in ${INSTALL_DIR} ($(tar -tzf "$archive" | wc -l) files)"
