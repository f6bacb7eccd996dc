#!/usr/bin/env bash
# First boot of the gateway droplet, run once by cloud-init (runcmd) as root, after
# cloud-init wrote everything this script uses:
#   /etc/voice-gateway/bootstrap.env  non-secret settings (versions, instance count, ports)
#   /etc/voice-gateway/gateway.env    the gateways' host settings and secrets (0600 gateway)
#   /etc/emqx/                        EMQX config, ACL, gateway-user bootstrap, env (secret)
#   /opt/voice-gateway/               ecosystem.config.cjs; the bundle (dist/) is downloaded in step 0
# Output: /var/log/cloud-init-output.log; `cloud-init status --long` says if it failed.
set -euo pipefail
# shellcheck source=/dev/null
source /usr/local/lib/voice-fleet/lib.sh
# shellcheck source=/dev/null
source /etc/voice-gateway/bootstrap.env
trap 'log "FAILED at line $LINENO"; touch /var/lib/voice-fleet/bootstrap.failed' ERR
install -d -m 0755 /var/lib/voice-fleet

# 0. The bundle, downloaded and checked against its SHA-256 before anything starts: a
#    failed download or another hash stops first boot here (fetch-bundle.sh).
/usr/local/sbin/voice-gateway-fetch-bundle

# 1. What depends on this droplet: health and the dashboard listen on the private address.
#    UDP_BIND is the anchor address, where DigitalOcean delivers reserved-IP traffic: a UDP
#    socket bound there answers devices from the reserved IP (bound to 0.0.0.0, replies
#    would leave from the droplet's own address, which devices' connected sockets drop).
private_ip=$(metadata interfaces/private/0/ipv4/address)
anchor_ip=$(metadata interfaces/public/0/anchor_ipv4/address)
log "private address ${private_ip}, anchor address ${anchor_ip}"
set_env /etc/voice-gateway/gateway.env HEALTH_BIND "$private_ip"
set_env /etc/voice-gateway/gateway.env UDP_BIND "$anchor_ip"
set_env /etc/emqx/emqx.env EMQX_DASHBOARD__LISTENERS__HTTP__BIND "${private_ip}:18083"
grep -q '^EMQX_NODE__COOKIE=' /etc/emqx/emqx.env ||
  set_env /etc/emqx/emqx.env EMQX_NODE__COOKIE "$(openssl rand -hex 24)"
sysctl --system >/dev/null

# 2. EMQX in Docker (host network: 1883 public, dashboard private, verifier on loopback).
install -d -o emqx -g emqx -m 0750 /var/lib/emqx /var/lib/emqx/data /var/lib/emqx/log
systemctl enable --now docker
retry 10 6 docker pull -q "$EMQX_IMAGE"
systemctl daemon-reload
systemctl enable --now emqx
wait_tcp 127.0.0.1 1883 180

# 3. Node and PM2; the bundle's runtime dependencies (@discordjs/opus builds here).
install_node_and_pm2 "$NODE_MAJOR" "$PM2_VERSION"
chown -R gateway:gateway "$INSTALL_DIR"
cd "$INSTALL_DIR"
retry 3 10 as_user gateway /home/gateway npm ci --omit=dev --no-audit --no-fund

# 4. The gateways under PM2, started at boot by systemd, logs rotated.
as_user gateway /home/gateway pm2 start "$INSTALL_DIR/ecosystem.config.cjs"
pm2_logrotate gateway /home/gateway "$PM2_LOGROTATE_VERSION"
pm2_hand_to_systemd gateway /home/gateway

# 5. Report each instance's health (informational: the on-call checks it too).
for ((i = 0; i < INSTANCES; i++)); do
  port=$((FIRST_HEALTH_PORT + i))
  if retry 30 2 curl -fsS -o /dev/null "http://${private_ip}:${port}/health"; then
    log "gateway $((i + 1)) healthy on ${private_ip}:${port}"
  else
    log "gateway $((i + 1)) NOT healthy on ${private_ip}:${port}"
  fi
done
touch /var/lib/voice-fleet/bootstrap.done
log "done"
