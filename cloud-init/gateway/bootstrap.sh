#!/usr/bin/env bash
# First boot of the gateway droplet, run once by cloud-init (runcmd) as root, after
# cloud-init wrote everything this script uses:
#   /etc/voice-gateway/bootstrap.env  non-secret settings (versions, instance count, ports)
#   /etc/voice-gateway/gateway.env    the gateways' host settings and secrets (0600 gateway)
#   /etc/emqx/                        EMQX config, ACL, gateway-user bootstrap, env (secret)
#   /opt/voice-gateway/               ecosystem.config.cjs; the bundle (dist/) is downloaded in step 0
# Order: nothing accepts a device until EMQX, the verifier and every gateway are ready.
# The guard (cloud-init bootcmd, every boot) closes MQTT to the outside; the last step here
# (and voice-fleet-open-devices.service on every later boot) opens it once all are ready.
# Output: /var/log/cloud-init-output.log; `cloud-init status --long` says if it failed.
set -euo pipefail
# shellcheck source=/dev/null
source /usr/local/lib/voice-fleet/lib.sh
# shellcheck source=/dev/null
source /etc/voice-gateway/bootstrap.env
trap 'log "FAILED at line $LINENO"; touch /var/lib/voice-fleet/bootstrap.failed' ERR
install -d -m 0755 /var/lib/voice-fleet

# 0. The guard again, now that the nftables package is surely installed, and with the
#    monitoring agent's user if DigitalOcean created it meanwhile (bootcmd ran before).
#    Without it nothing starts: the metadata service would serve our secrets to anyone.
sh /usr/local/lib/voice-fleet/guard.sh
nft list chain inet voice_fleet_guard metadata_out >/dev/null
nft list chain inet voice_fleet_guard broker_internal_out >/dev/null
nft list chain inet voice_fleet_gate device_gate >/dev/null
# cloud-init's own copies of the user data: root only.
if [[ -d /var/lib/cloud/instances ]]; then chmod -R go-rwx /var/lib/cloud/instances; fi

# 0b. The bundle, downloaded and checked against its SHA-256 before anything starts: a
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
# EMQX reads these values as HOCON: quoted, so that `:` and the like stay in the string.
set_env /etc/emqx/emqx.env EMQX_DASHBOARD__LISTENERS__HTTP__BIND "\"${private_ip}:18083\""
# The cookie stays unquoted (bin/emqx also uses it raw, and must see the same value);
# the leading letters keep HOCON from reading a hex string as a number.
grep -q '^EMQX_NODE__COOKIE=' /etc/emqx/emqx.env ||
  set_env /etc/emqx/emqx.env EMQX_NODE__COOKIE "vf$(openssl rand -hex 24)"
sysctl --system >/dev/null

# 2. With an MQTT domain: the TLS certificate (DNS-01), before EMQX starts its listener.
install -d -o emqx -g emqx -m 0750 /var/lib/emqx /var/lib/emqx/data /var/lib/emqx/log /etc/emqx/certs
if [[ -n "${MQTT_DOMAIN:-}" ]]; then
  retry 3 30 /usr/local/sbin/voice-fleet-mqtt-cert obtain
fi

# 3. EMQX in Docker (host network: devices on 1883/8883, still shut by the guard;
#    gateways on 127.0.0.1:1884; dashboard private; verifier on loopback).
systemctl enable --now docker
retry 10 6 docker pull -q "$EMQX_IMAGE"
systemctl daemon-reload
systemctl enable --now emqx
wait_tcp 127.0.0.1 1884 180

# 4. Node and PM2 come in the bundle (node/bin/node, node_modules/pm2: the very binaries
#    the tests ran on, @discordjs/opus built on the build machine): nothing is installed
#    from npm and nothing is compiled here.
export PATH="${INSTALL_DIR}/node/bin:${INSTALL_DIR}/node_modules/pm2/bin:${PATH}"
# (`pm2 --version` would start a PM2 daemon for root: the version comes from its package.json.)
log "node $(node --version), pm2 $(node -p "require('${INSTALL_DIR}/node_modules/pm2/package.json').version") from the bundle"
# The bundle stays root's (unpacked as root; gateway only reads and runs it): root runs
# this node and pm2 too (here, and in the on-call's login shell), so the user the gateways
# run as must not be able to replace them. Nothing writes there at run time.

# 5. The gateways under PM2, started at boot by systemd (the unit runs the bundle's PM2 with
#    the bundle's node first on PATH); logs rotated by logrotate (/etc/logrotate.d/voice-fleet-pm2).
as_user gateway /home/gateway pm2 start "$INSTALL_DIR/ecosystem.config.cjs"
pm2_hand_to_systemd gateway /home/gateway

# 6. Devices in: once EMQX, the verifier and every gateway are ready, the gate opens (this
#    unit does the same on every later boot). Not ready in time: first boot fails, loudly.
systemctl daemon-reload
systemctl enable voice-fleet-open-devices
systemctl start voice-fleet-open-devices
touch /var/lib/voice-fleet/bootstrap.done
log "done"
