# The droplet's packet guard (nftables), loaded by cloud-init's bootcmd on EVERY boot,
# before cloud-init writes any file or installs anything, and again by first boot once
# the nftables package is surely there. Run as root with sh: guard.sh [open]
#
# 1. The metadata service (169.254.169.254) serves the droplet's user data, secrets
#    included, to any process that asks. Only root may reach it: cloud-init and our
#    first-boot scripts run as root; the gateways (user gateway), EMQX (uid 1000 in a
#    host-network container), npm's install scripts and everything else get a reject.
#    The one exception is DigitalOcean's monitoring agent (user do-agent, when it exists),
#    which reads the droplet id and its auth key there; without it the alerts stay silent.
#    Containers on a Docker bridge (we run none) are dropped on the forward path.
# 1b. EMQX's Erlang distribution (4370) and cluster RPC (5369 in Docker, 5370) listen on
#    every address of the host network, and the Erlang cookie is all they ask: whoever has
#    it runs code in EMQX. The cookie is in every `emqx ctl`'s argv (bin/emqx's
#    relx_nodetool passes -setcookie "$COOKIE"), which /proc shows every user, e.g. the
#    gateways' user. So only root and uid 1000 (EMQX's user in its image, render.ts) may
#    connect to those ports; the cloud firewall keeps everyone else off them.
# 2. The device gate: MQTT (1883, 8883) from anything but loopback gets a TCP reset until
#    voice-fleet-open-devices has seen every gateway ready and the verifier answer, then
#    `guard.sh open` empties the gate. A boot starts with no tables, so every boot closes
#    the gate first; a reload (first boot does one) leaves the gate as it is.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin

if [ "${1:-}" = open ]; then
  nft flush chain inet voice_fleet_gate device_gate
  exit 0
fi

if ! command -v nft >/dev/null 2>&1; then
  echo "voice-fleet guard: nft is not installed yet; first boot loads the guard after installing it" >&2
  exit 0
fi

# Users exempted besides root, by uid, for those that exist now.
exempt=0
if agent_uid=$(id -u do-agent 2>/dev/null); then exempt="0, ${agent_uid}"; fi

# Declaring, deleting and re-creating the table makes a reload replace the old rules.
nft -f - <<RULES
table inet voice_fleet_guard
delete table inet voice_fleet_guard
table inet voice_fleet_guard {
  chain metadata_out {
    type filter hook output priority -10; policy accept;
    ip daddr 169.254.169.254 meta skuid != { ${exempt} } counter reject with icmp type admin-prohibited
  }
  chain broker_internal_out {
    type filter hook output priority -10; policy accept;
    tcp dport { 4370, 5369, 5370 } meta skuid != { 0, 1000 } counter reject with tcp reset
  }
  chain metadata_forward {
    type filter hook forward priority -10; policy accept;
    ip daddr 169.254.169.254 counter drop
  }
}
RULES

# The gate, closed, only where this boot has none yet; an existing one keeps its state.
if ! nft list table inet voice_fleet_gate >/dev/null 2>&1; then
  nft -f - <<RULES
table inet voice_fleet_gate {
  chain device_gate {
    tcp dport { 1883, 8883 } counter reject with tcp reset
  }
  chain inbound {
    type filter hook input priority -10; policy accept;
    iifname "lo" accept
    jump device_gate
  }
}
RULES
fi
