#!/usr/bin/env bash
# First boot of the API droplet, run once by cloud-init (runcmd) as root, after cloud-init
# wrote everything this script uses:
#   /etc/voice-fleet/api-bootstrap.env   release URLs and checksums, versions, port, domain
#   /etc/manager-api/api.env             manager-api's environment (0600 api): DATABASE_URL,
#                                        MQTT endpoint (the gateway's reserved IP), signing key
#   /etc/voice-fleet/release-auth-header optional `Authorization: Bearer ...` line for private
#                                        artifacts (root 0600; curl reads it, never argv)
#   /etc/nginx/sites-available/manager   nginx: manager-web static build + the API proxy
# Output: /var/log/cloud-init-output.log; `cloud-init status --long` says if it failed.
set -euo pipefail
# shellcheck source=/dev/null
source /usr/local/lib/voice-fleet/lib.sh
# shellcheck source=/dev/null
source /etc/voice-fleet/api-bootstrap.env
trap 'log "FAILED at line $LINENO"; touch /var/lib/voice-fleet/bootstrap.failed' ERR
install -d -m 0755 /var/lib/voice-fleet

# 0. The guard again (cloud-init's bootcmd loads it on every boot, possibly before the
#    nftables package was there): only root reaches the metadata service, which serves the
#    user data with DATABASE_URL and the signing key. Without it nothing starts.
sh /usr/local/lib/voice-fleet/guard.sh
nft list chain inet voice_fleet_guard metadata_out >/dev/null
if [[ -d /var/lib/cloud/instances ]]; then chmod -R go-rwx /var/lib/cloud/instances; fi

# Downloads a release artifact and checks its SHA-256: fetch URL SHA256 OUT
# The token stays in its root-only file: curl reads the header from there (-H @file), so it
# is on no command line (/proc/<pid>/cmdline) and in no log line (retry logs no arguments).
fetch() {
  local url=$1 sha=$2 out=$3 auth=()
  if [[ -s /etc/voice-fleet/release-auth-header ]]; then
    auth=(-H @/etc/voice-fleet/release-auth-header)
  fi
  retry 5 5 curl -fsSL "${auth[@]}" -o "$out" "$url" || { log "download failed: ${url%%\?*}"; return 1; }
  echo "${sha}  ${out}" | sha256sum -c - >/dev/null || { log "checksum mismatch for ${url%%\?*}"; return 1; }
}

# Unpacks a .tar.gz into DEST; if it holds one folder that has MARKER, that folder's
# content becomes DEST: unpack ARCHIVE DEST MARKER
unpack() {
  local archive=$1 dest=$2 marker=$3 tmp
  tmp=$(mktemp -d)
  tar -xzf "$archive" -C "$tmp"
  local root=$tmp
  if [[ ! -e "$tmp/$marker" ]]; then
    root=$(dirname "$(find "$tmp" -mindepth 2 -maxdepth 2 -name "$marker" | head -n 1)")
    [[ -e "$root/$marker" ]] || { log "no ${marker} in ${archive}"; return 1; }
  fi
  rm -rf "$dest"
  install -d "$(dirname "$dest")"
  mv "$root" "$dest"
  rm -rf "$tmp"
}

# 1. Node, npm and PM2 from the runtime object `pulumi up` uploads (the Node the gateway's
#    tests ran on, in its official layout, and the gateway's pinned PM2), checked against
#    its SHA-256 like the gateway bundle: a failed download or another hash stops here.
BOOTSTRAP_ENV=/dev/null BUNDLE_URL="$RUNTIME_URL" BUNDLE_SHA256="$RUNTIME_SHA256" INSTALL_DIR="$RUNTIME_DIR" \
  /usr/local/sbin/voice-fleet-fetch-bundle
export PATH="${RUNTIME_DIR}/node/bin:${RUNTIME_DIR}/node_modules/pm2/bin:${PATH}"
# Native addons of manager-api build against this Node's own headers, never downloaded ones.
export npm_config_nodedir="${RUNTIME_DIR}/node"
log "node $(node --version), npm $(npm --version) from the runtime object"

# 2. manager-api from its release artifact, run by user api under PM2.
fetch "$API_RELEASE_URL" "$API_RELEASE_SHA256" /tmp/manager-api.tar.gz
unpack /tmp/manager-api.tar.gz /opt/manager-api package.json
chown -R api:api /opt/manager-api
cd /opt/manager-api
# manager-api's own dependencies (not this repository's), from npm's configured registry.
if [[ -f package-lock.json ]]; then
  retry 3 10 as_user api /home/api npm_config_nodedir="$npm_config_nodedir" npm ci --omit=dev --no-audit --no-fund
fi
as_user api /home/api pm2 start "/opt/manager-api/${API_ENTRY}" --name manager-api \
  --node-args="--env-file=/etc/manager-api/api.env" --kill-timeout 10000 --time
pm2_hand_to_systemd api /home/api

# 3. manager-web's static build behind nginx, which also proxies the API paths.
fetch "$WEB_RELEASE_URL" "$WEB_RELEASE_SHA256" /tmp/manager-web.tar.gz
unpack /tmp/manager-web.tar.gz /var/www/manager-web index.html
chown -R root:root /var/www/manager-web
chmod -R a+rX /var/www/manager-web
rm -f /etc/voice-fleet/release-auth-header /tmp/manager-api.tar.gz /tmp/manager-web.tar.gz
ln -sf /etc/nginx/sites-available/manager /etc/nginx/sites-enabled/manager
rm -f /etc/nginx/sites-enabled/default
nginx -t
systemctl enable nginx
systemctl reload-or-restart nginx

# 4. TLS when a domain is configured and already points here. Plain HTTP stays on:
#    devices fetch the OTA over HTTP, so there is no redirect.
if [[ -n "${DOMAIN:-}" ]]; then
  if retry 3 20 certbot --nginx --non-interactive --agree-tos --no-redirect -m "$ALERT_EMAIL" -d "$DOMAIN"; then
    log "TLS certificate installed for ${DOMAIN}"
  else
    log "no TLS yet for ${DOMAIN}: point its A record here, then run: certbot --nginx --no-redirect -d ${DOMAIN}"
  fi
fi

wait_tcp 127.0.0.1 "$API_PORT" 120 || log "manager-api does not listen on ${API_PORT}: pm2 logs manager-api"
touch /var/lib/voice-fleet/bootstrap.done
log "done"
