# Shared by the first-boot scripts of both droplets (sourced, not run).
# Installed by cloud-init at /usr/local/lib/voice-fleet/lib.sh.

export DEBIAN_FRONTEND=noninteractive

log() { echo "[$(basename "$0") $(date -u +%FT%TZ)] $*"; }

# Runs a command until it succeeds: retry ATTEMPTS DELAY_S CMD...
# Logs only the command's name, never its arguments: they may hold a secret (a header, a
# URL with a signature), and this log is /var/log/cloud-init-output.log.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "giving up after $n attempts: ${1##*/} (arguments not logged)"
      return 1
    fi
    n=$((n + 1))
    sleep "$delay"
  done
}

# DigitalOcean metadata service (link-local; no credentials involved).
metadata() { curl -fsS --retry 10 --retry-delay 2 "http://169.254.169.254/metadata/v1/$1"; }

# Sets KEY=VALUE in an env file, replacing an existing line: set_env FILE KEY VALUE
set_env() {
  local file=$1 key=$2 value=$3
  if grep -q "^${key}=" "$file"; then
    sed -i "s|^${key}=.*|${key}=${value}|" "$file"
  else
    printf '%s=%s\n' "$key" "$value" >>"$file"
  fi
}

# Waits until something listens on HOST:PORT: wait_tcp HOST PORT TIMEOUT_S
wait_tcp() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "nothing listens on ${host}:${port}"
      return 1
    fi
    sleep 2
  done
}

# PM2 for USER under systemd: saves what runs now, then hands the daemon to the
# pm2-USER unit (LimitNOFILE=infinity; starts at boot; `pm2 kill` on stop drains apps).
pm2_hand_to_systemd() {
  local user=$1 home=$2
  as_user "$user" "$home" pm2 save --force
  pm2 startup systemd -u "$user" --hp "$home" >/dev/null
  as_user "$user" "$home" pm2 kill
  systemctl daemon-reload
  systemctl start "pm2-${user}"
}

# Runs a command as USER with HOME, PM2_HOME and this PATH (where node and pm2 are):
# as_user USER HOME CMD...
as_user() {
  local user=$1 home=$2
  shift 2
  runuser -u "$user" -- env HOME="$home" PM2_HOME="$home/.pm2" PATH="$PATH" "$@"
}
