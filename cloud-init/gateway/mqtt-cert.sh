#!/usr/bin/env bash
# The MQTT TLS certificate (Let's Encrypt) for the stack's MQTT domain, with DNS-01 through
# the DigitalOcean API, so that only 8883 and the UDP ports need to face the internet.
#   voice-fleet-mqtt-cert obtain   first boot: request the certificate (or reuse a live one)
#   voice-fleet-mqtt-cert deploy   certbot's deploy hook, after every issue and renewal:
#                                  copy it where EMQX reads it, restart the TLS listener
# Renewal is certbot's own timer (Debian's certbot package: certbot.timer, twice a day); the
# deploy hook is saved in /etc/letsencrypt/renewal/<domain>.conf at the first issue.
# The DigitalOcean token (scoped to domain records) is in /etc/letsencrypt/digitalocean.ini,
# root 0600; settings in /etc/voice-gateway/bootstrap.env (MQTT_DOMAIN, ALERT_EMAIL).
set -euo pipefail
# Paths and owner can be overridden from the environment (the test runs `deploy` in a
# temporary directory).
# shellcheck source=/dev/null
source "${BOOT_ENV:-/etc/voice-gateway/bootstrap.env}"
CERTS=${CERTS:-/etc/emqx/certs}
LIVE_ROOT=${LIVE_ROOT:-/etc/letsencrypt/live}
OWNER=${CERT_OWNER:-emqx}
log() { echo "[voice-fleet-mqtt-cert $(date -u +%FT%TZ)] $*"; }

case "${1:-}" in
obtain)
  certbot certonly --non-interactive --agree-tos -m "$ALERT_EMAIL" --keep-until-expiring \
    --dns-digitalocean --dns-digitalocean-credentials /etc/letsencrypt/digitalocean.ini \
    --dns-digitalocean-propagation-seconds 60 \
    --deploy-hook "/usr/local/sbin/voice-fleet-mqtt-cert deploy" -d "$MQTT_DOMAIN"
  # A certificate kept from before (no issue, so no hook): install it anyway.
  [[ -s "$CERTS/privkey.pem" ]] || "$0" deploy
  ;;
deploy)
  live="${LIVE_ROOT}/${MQTT_DOMAIN}"
  install -d -o "$OWNER" -g "$OWNER" -m 0750 "$CERTS"
  install -o "$OWNER" -g "$OWNER" -m 0644 "$live/fullchain.pem" "$CERTS/fullchain.pem.new"
  install -o "$OWNER" -g "$OWNER" -m 0600 "$live/privkey.pem" "$CERTS/privkey.pem.new"
  mv -f "$CERTS/fullchain.pem.new" "$CERTS/fullchain.pem"
  mv -f "$CERTS/privkey.pem.new" "$CERTS/privkey.pem"
  # A running EMQX re-reads the files when the listener restarts (TLS devices reconnect once).
  if command -v docker >/dev/null && docker inspect -f '{{.State.Running}}' emqx 2>/dev/null | grep -q true; then
    docker exec emqx emqx ctl listeners restart ssl:default
    log "certificate for ${MQTT_DOMAIN} deployed, TLS listener restarted"
  else
    log "certificate for ${MQTT_DOMAIN} deployed"
  fi
  ;;
*)
  echo "usage: $0 obtain|deploy" >&2
  exit 2
  ;;
esac
