#!/usr/bin/env bash
# Creates the Python virtual environment that runs the LiveKit Agents worker of the tests
# (tools/agents/, started by tools/sim/agents-worker-process.ts): .cache/agents-venv, with
# exactly tools/agents/requirements.txt, installed by pip from its configured index
# (pip.conf / PIP_* variables; nothing here names an index).
#
# Idempotent: the venv records the SHA-256 of the requirements file it was built from, and
# a venv whose record matches is left alone (no pip call, well under a second). Any other
# venv there (older requirements, a half-finished install) is removed and built again.
# Prints one line saying which of the two happened; pip's own output only on failure.
#
# Python: $AGENTS_PYTHON, else python3 (>= 3.10, with the venv module; on Debian that is
# the python3-venv package).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/agents-venv"
reqs="$root/tools/agents/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${AGENTS_PYTHON:-python3}"

want="$(sha256sum "$reqs" | cut -d' ' -f1)"
version="$(sed -n 's/^livekit-agents==//p' "$reqs")"

if [[ -x "$venv/bin/python" ]] && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
  echo "setup-agents-venv: $venv is up to date (livekit-agents $version), nothing to do"
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

start=$SECONDS
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The stamp is written last, so an interrupted run leaves a venv that the next run rebuilds.
rm -rf "$venv"
mkdir -p "$root/.cache"
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
echo "setup-agents-venv: installed livekit-agents $version into $venv ($(du -sh "$venv" | cut -f1), $((SECONDS - start)) s)"
