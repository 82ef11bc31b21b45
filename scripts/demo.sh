#!/usr/bin/env bash
# The main job: set up (idempotent), then run the demo on the shipped default models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
python3 -m rced demo -o demo_out "$@"
