# Shared by the first-boot scripts of both droplets (sourced, not run).
# Installed by cloud-init at /usr/local/lib/voice-fleet/lib.sh.

export DEBIAN_FRONTEND=noninteractive

log() { echo "[$(basename "$0") $(date -u +%FT%TZ)] $*"; }

# Runs a command until it succeeds: retry ATTEMPTS DELAY_S CMD...
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "giving up after $n attempts: $*"
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

# Node from NodeSource (its nodejs package ships the headers node-gyp builds against,
# under /usr/include/node: the bundle's .npmrc says nodedir=/usr) and a pinned PM2.
install_node_and_pm2() {
  local major=$1 pm2_version=$2
  install -d -m 0755 /etc/apt/keyrings
  retry 5 5 bash -c "curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
    | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg"
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_${major}.x nodistro main" \
    >/etc/apt/sources.list.d/nodesource.list
  # First boot: unattended-upgrades may hold the dpkg lock for minutes.
  retry 5 5 apt-get -o DPkg::Lock::Timeout=600 update -q
  retry 5 5 apt-get -o DPkg::Lock::Timeout=600 install -y -q nodejs
  node --version | grep -q "^v${major}\." || { log "expected Node ${major}, got $(node --version)"; return 1; }
  retry 5 5 npm install -g --no-audit --no-fund "pm2@${pm2_version}"
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

# Runs a command as USER with HOME and PM2_HOME set: as_user USER HOME CMD...
as_user() {
  local user=$1 home=$2
  shift 2
  runuser -u "$user" -- env HOME="$home" PM2_HOME="$home/.pm2" "$@"
}

# pm2-logrotate, pinned: rotate at 50 MB, keep 14, compress.
pm2_logrotate() {
  local user=$1 home=$2 version=$3
  retry 3 5 as_user "$user" "$home" pm2 install "pm2-logrotate@${version}"
  as_user "$user" "$home" pm2 set pm2-logrotate:max_size 50M
  as_user "$user" "$home" pm2 set pm2-logrotate:retain 14
  as_user "$user" "$home" pm2 set pm2-logrotate:compress true
}
