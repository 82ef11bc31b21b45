#!/usr/bin/env bash
# Ship a trained acoustic-model run folder as the default AM, then re-derive and remeasure
# everything that depends on it, in dependency order:
#   1. model files into grammar/default_am (model.keras, config.json, norm.json, training_log.csv)
#   2. its input mask floor, re-chosen on the calibration set (benchmarks/am_floor.py --apply)
#   3. int8 and float TFLite files; their calibration ranges recorded for byte-exact rebuilds
#   4. the shipped grammar's thresholds: float (recognition.py, which also fills the model card's
#      metrics), spotting (rejection.py), int8 (grammar calibrate --backend int8), all on the
#      calibration set (TEST-ONLY voices, seed 101)
#   5. the AM-specific pronunciation dictionary (TRAIN voices, seed 100)
#   6. every table that depends on the AM, the bundle report and the README's sections.
# A step already done is redone (each is deterministic); the model card's prose is written by hand.
# Usage (repo root): bash scripts/ship_am.sh RUN_DIR [FIRST_STEP]   e.g. ... runs/am_kokoro/model 4
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: ship_am.sh RUN_DIR [FIRST_STEP]}
first=${2:-1}
am=grammar/default_am
g=grammar/data/grammar_default.json
export TF_CPP_MIN_LOG_LEVEL=2
step() { echo "== ship_am step $1: $2 ($(date -u +%H:%M:%S))"; }
manifest() {  # 0: the calibration set (seed 101), 1: the test set (seed 202), as recognition.py makes them
  python -c "import sys; sys.path.insert(0, 'benchmarks'); from recognition import datasets; print(datasets(2)[$1])"
}

if [ "$first" -le 1 ]; then
  step 1 "model files from $run"
  [ -f "$run/model.keras" ] || { echo "ship_am: $run/model.keras: no such file" >&2; exit 1; }
  for f in model.keras config.json norm.json training_log.csv; do cp "$run/$f" "$am/$f.part" && mv "$am/$f.part" "$am/$f"; done
fi
if [ "$first" -le 2 ]; then step 2 "input mask floor"; python benchmarks/am_floor.py --apply; fi
if [ "$first" -le 3 ]; then
  step 3 "int8 export and calibration ranges"
  python -m firmware_export int8 am
  python scripts/record_calibration.py
fi
if [ "$first" -le 4 ]; then
  step 4 "thresholds"
  python benchmarks/recognition.py --card --write-default-grammar "$g"
  python benchmarks/rejection.py --write-spot-threshold "$g"
  python -m grammar calibrate --dataset "$(manifest 0)" --max-far 0.1 --backend int8 --grammar "$g" -o "$g"
fi
if [ "$first" -le 5 ]; then step 5 "pronunciation dictionary"; python -m grammar dictionary build -o grammar/data/pron_dict_default.json; fi
if [ "$first" -le 6 ]; then
  step 6 "tables"
  python benchmarks/real_commands.py
  python benchmarks/export.py --manifest "$(manifest 1)"
  python benchmarks/listening.py --factors
  python benchmarks/spotting.py
  python benchmarks/augmentation.py
  tmp=$(mktemp -d)
  python -m firmware_export build -o "$tmp/bundle" && cp "$tmp/bundle/report.md" benchmarks/results/bundle_report.md
  rm -rf "$tmp"
  python benchmarks/readme.py
fi
step done "review git diff, then the model card's prose and the README's status"
