#!/usr/bin/env bash
# The main job: set up (idempotent), then run the demo on the shipped default models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
python3 -m rced demo -o demo_out/denoise "$@"       # streaming denoise of a TEST-ONLY voice in babble
python3 -m grammar demo --backend int8 -o demo_out/commands   # commands in babble through the int8 chain
