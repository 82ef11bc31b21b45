#!/usr/bin/env bash
# The test command: sets itself up (idempotent), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0
python3 -m pytest -p no:cacheprovider "$@"
