#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: TTS engines, sox and alsa-utils (its speaker-test
# recordings are the real speech of benchmarks/real_commands.py) from Debian, the project
# and its pinned Python dependencies from PyPI. Safe to run again: it only fills what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox alsa-utils"
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
python3 -m pip install -q --disable-pip-version-check -e ".[train,train-jax,test]"
