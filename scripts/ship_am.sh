#!/usr/bin/env bash
# Ship a trained acoustic-model run folder as the default AM, then re-derive and remeasure
# everything that depends on it, in dependency order (independent steps two at a time):
#   1. model files into grammar/default_am (model.keras, config.json, norm.json, training_log.csv);
#      the input mask floor comes with the run's config: its training features were computed
#      with it (scripts/gpu/make_am_data.py --am), so it is kept, and benchmarks/am_floor.py
#      (step 3) reports the calibration set's view of it
#   2. int8 and float TFLite files; their calibration ranges recorded for byte-exact rebuilds
#   3. the shipped grammar's thresholds: float (recognition.py, which also fills the model card's
#      metrics), spotting (rejection.py), int8 (grammar calibrate --backend int8), all on the
#      calibration set (TEST-ONLY voices, seed 101); beside them the AM-specific pronunciation
#      dictionary (TRAIN voices, seed 100) and the floor report
#   4. every other table that depends on the AM (the choices made on the calibration set and the dev
#      streams among them: spotter settings, speech check, spelling, posterior readout; each says when
#      it would choose other than what ships), the bundle report, the targets table and the README's sections.
# Every step is deterministic and redone when run again; the model card's prose is written by hand.
# Usage (repo root): bash scripts/ship_am.sh RUN_DIR [FIRST_STEP]   e.g. ... runs/am_kokoro/model 3
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

lane() {  # run $1 (a ;-separated command list) in the background, its log under /tmp
  local log; log=$(mktemp /tmp/ship_am.XXXX.log); echo "   lane: $1 (log $log)"
  bash -c "set -euo pipefail; $1" >"$log" 2>&1 &
}

if [ "$first" -le 1 ]; then
  step 1 "model files from $run"
  [ -f "$run/model.keras" ] || { echo "ship_am: $run/model.keras: no such file" >&2; exit 1; }
  for f in model.keras config.json norm.json training_log.csv; do cp "$run/$f" "$am/$f.part" && mv "$am/$f.part" "$am/$f"; done
fi
if [ "$first" -le 2 ]; then
  step 2 "int8 export and calibration ranges"
  python -m firmware_export int8 am
  python scripts/record_calibration.py --update --am $am  # the denoisers' records stay as shipped
fi
if [ "$first" -le 3 ]; then
  step 3 "thresholds; dictionary and floor report beside them"
  lane "python benchmarks/recognition.py --card --write-default-grammar $g; python benchmarks/rejection.py --write-spot-threshold $g; python -m grammar calibrate --dataset $(manifest 0) --max-far 0.1 --backend int8 --grammar $g -o $g"
  lane "python -m grammar dictionary build -o grammar/data/pron_dict_default.json; python benchmarks/am_floor.py"
  wait -n && wait -n || { echo "ship_am: a step-3 lane failed (logs above)" >&2; wait; exit 1; }
fi
if [ "$first" -le 4 ]; then
  step 4 "tables"
  lane "python benchmarks/export.py --manifest $(manifest 1); python benchmarks/spotting.py; python benchmarks/spellings.py; python benchmarks/speech_check.py; python benchmarks/rooms.py"
  lane "python benchmarks/real_commands.py; python benchmarks/nonspeech.py; python benchmarks/listening.py --factors; python benchmarks/augmentation.py; python benchmarks/decoding_levers.py"
  wait -n && wait -n || { echo "ship_am: a step-4 lane failed (logs above)" >&2; wait; exit 1; }
  tmp=$(mktemp -d)
  python -m firmware_export build -o "$tmp/bundle"
  cp "$tmp/bundle/report.md" benchmarks/results/bundle_report.md
  cp "$tmp/bundle/report.json" benchmarks/results/bundle_report.json
  rm -rf "$tmp"
  python benchmarks/targets.py
  python benchmarks/readme.py
fi
grep -q "update grammar.decoding.listen" benchmarks/results/spotting.md && echo "ship_am: the dev stream chose other spotter settings (benchmarks/results/spotting.md): set grammar.decoding.listen.LISTEN_WINDOW_S / LISTEN_MIN_WINDOWS / LISTEN_THRESHOLD_OFFSET / LISTEN_BEST_OFFSET / LISTEN_COMMAND_OFFSETS, rerun spotting.py and listening.py --factors, then readme.py" >&2
grep -q '\*\*not\*\* the' benchmarks/results/speech_check.md && echo "ship_am: the calibration set chose another speech check (benchmarks/results/speech_check.md): set grammar.decoding.recognizer.SPEECH_FLOOR / TONAL_CEILING, rerun spotting.py, nonspeech.py, listening.py --factors and speech_check.py, then readme.py" >&2
chosen=$(python -c "import json; print(json.load(open('benchmarks/results/decoding_levers.json'))['chosen_on_calibration'])")
grep -qF "| $chosen (shipped) |" benchmarks/results/decoding_levers.md || echo "ship_am: the calibration set puts another posterior readout first ($chosen; benchmarks/results/decoding_levers.md): python benchmarks/decoding_levers.py --apply, then this script from step 3 (or keep it, and say why)" >&2
step done "review git diff, then the model card's prose and the README's status"
