#!/usr/bin/env bash
# Opens the device gate (MQTT 1883/8883 from outside the droplet) once everything that
# serves a device is ready, on every boot: run by voice-fleet-open-devices.service after
# EMQX and the gateways' PM2 unit. Until then devices get a TCP reset (the guard's
# device_gate), so none is refused at CONNACK by a verifier that is not up, and no hello
# reaches the broker before the gateways subscribed.
#
# Ready means, all at once:
#   - EMQX accepts TCP on the gateways' listener (127.0.0.1:1884);
#   - the device verifier answers an auth request (HTTP 200, deny: it is up and has its key);
#   - every gateway instance answers 200 on /readyz (broker connected, workers alive).
# Settings come from the droplet's files; each can be overridden from the environment
# (the local replay test runs this script against the local box's processes).
# Exit 0: gate open. Exit 1: not ready within OPEN_TIMEOUT_S; the gate stays closed and the
# unit shows failed (`systemctl status voice-fleet-open-devices`).
set -euo pipefail

setting() { # setting KEY FILE: KEY's value in an env file (quotes removed), or empty
  [[ -r "$2" ]] || return 0
  sed -n "s/^$1=//p" "$2" | tail -n 1 | sed "s/^'\(.*\)'$/\1/"
}
BOOT_ENV=${BOOT_ENV:-/etc/voice-gateway/bootstrap.env}
GATEWAY_ENV=${GATEWAY_ENV:-/etc/voice-gateway/gateway.env}
INSTANCES=${INSTANCES:-$(setting INSTANCES "$BOOT_ENV")}
FIRST_HEALTH_PORT=${FIRST_HEALTH_PORT:-$(setting FIRST_HEALTH_PORT "$BOOT_ENV")}
HEALTH_HOST=${HEALTH_HOST:-$(setting HEALTH_BIND "$GATEWAY_ENV")}
BROKER_HOST=${BROKER_HOST:-127.0.0.1}
BROKER_PORT=${BROKER_PORT:-1884}
VERIFIER_URL=${VERIFIER_URL:-http://127.0.0.1:9100/mqtt/auth}
OPEN_CMD=${OPEN_CMD:-sh /usr/local/lib/voice-fleet/guard.sh open}
OPEN_TIMEOUT_S=${OPEN_TIMEOUT_S:-900}
POLL_S=${POLL_S:-2}

log() { echo "[voice-fleet-open-devices $(date -u +%FT%TZ)] $*"; }

broker_ready() { (exec 3<>"/dev/tcp/${BROKER_HOST}/${BROKER_PORT}") 2>/dev/null; }
verifier_ready() {
  [[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"clientid":"readiness-check","username":"readiness-check","password":"x"}' \
    "$VERIFIER_URL") == 200 ]]
}
gateways_ready() {
  local i
  for ((i = 0; i < INSTANCES; i++)); do
    curl -fs -m 2 -o /dev/null "http://${HEALTH_HOST}:$((FIRST_HEALTH_PORT + i))/readyz" || return 1
  done
}

if [[ -z "$INSTANCES" || -z "$FIRST_HEALTH_PORT" || -z "$HEALTH_HOST" ]]; then
  log "missing settings (INSTANCES, FIRST_HEALTH_PORT, HEALTH_BIND): the gate stays closed"
  exit 1
fi

deadline=$((SECONDS + OPEN_TIMEOUT_S))
waiting=""
while :; do
  if ! broker_ready; then now="EMQX (${BROKER_HOST}:${BROKER_PORT})"
  elif ! verifier_ready; then now="the device verifier (${VERIFIER_URL})"
  elif ! gateways_ready; then now="the gateways' /readyz (${HEALTH_HOST}:${FIRST_HEALTH_PORT}+${INSTANCES})"
  else break
  fi
  [[ "$now" == "$waiting" ]] || log "waiting for ${now}"
  waiting=$now
  if ((SECONDS >= deadline)); then
    log "NOT READY after ${OPEN_TIMEOUT_S}s, still waiting for ${now}: devices stay shut out"
    exit 1
  fi
  sleep "$POLL_S"
done
$OPEN_CMD
log "EMQX, the verifier and ${INSTANCES} gateways ready: devices admitted"
