#!/usr/bin/env bash
# Makes .cache/agents-venv: the Python virtual environment that runs the LiveKit Agents
# worker of the tests (tools/agents/, started by tools/sim/agents-worker-process.ts), with
# exactly tools/agents/requirements.txt, installed by pip from its configured index
# (pip.conf / PIP_* variables; nothing here names an index).
#
# Cached per machine, like the LiveKit server (build-livekit.sh): CI clones afresh on every
# run and the install takes about 2 minutes, so the venv itself lives in
# ~/.cache/voice-fleet/agents-venv-<hash of the requirements>, and .cache/agents-venv is a
# link to it. A venv there records the SHA-256 of the requirements it was built from, last,
# so a half-finished one is never trusted: it is removed and built again. Concurrent runs
# (several checkouts) take turns on a lock. Prints one line saying what it did; pip's own
# output only on failure.
#
# Python: $AGENTS_PYTHON, else python3 (>= 3.10, with the venv module; on Debian that is
# the python3-venv package).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
link="$root/.cache/agents-venv"
reqs="$root/tools/agents/requirements.txt"
python="${AGENTS_PYTHON:-python3}"

want="$(sha256sum "$reqs" | cut -d' ' -f1)"
version="$(sed -n 's/^livekit-agents==//p' "$reqs")"
machine_cache="${XDG_CACHE_HOME:-$HOME/.cache}/voice-fleet"
venv="$machine_cache/agents-venv-${want:0:16}"
stamp="$venv/.requirements.sha256"

ready() { [[ -x "$venv/bin/python" ]] && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; }
link_it() {
  mkdir -p "$root/.cache"
  if [[ "$(readlink "$link" 2>/dev/null || true)" != "$venv" ]]; then
    rm -rf "$link"
    ln -s "$venv" "$link"
  fi
}

if ready; then
  link_it
  echo "setup-agents-venv: $link -> $venv is up to date (livekit-agents $version), nothing to do"
  exit 0
fi

if ! command -v "$python" >/dev/null; then
  echo "setup-agents-venv: error: $python not found (set AGENTS_PYTHON to a Python >= 3.10)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup-agents-venv: error: $python is $("$python" --version 2>&1); livekit-agents $version needs >= 3.10" >&2
  exit 1
fi

mkdir -p "$machine_cache"
exec 9>"$machine_cache/agents-venv.lock"
flock 9
if ready; then # another run built it while this one waited
  link_it
  echo "setup-agents-venv: $link -> $venv is up to date (livekit-agents $version, built by a concurrent run)"
  exit 0
fi

start=$SECONDS
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
if ! "$python" -m venv "$venv" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-agents-venv: error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
if ! "$venv/bin/python" -m pip install --quiet --no-input -r "$reqs" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-agents-venv: error: pip install -r tools/agents/requirements.txt failed (pip's output is above)" >&2
  exit 1
fi
if ! "$venv/bin/python" -c 'import livekit.agents, livekit.rtc' >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-agents-venv: error: the new venv cannot import livekit.agents (above)" >&2
  exit 1
fi
echo "$want" >"$stamp"
link_it
echo "setup-agents-venv: installed livekit-agents $version into $venv, linked from $link ($(du -sh "$venv" | cut -f1), $((SECONDS - start)) s)"
