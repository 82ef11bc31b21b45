#!/usr/bin/env bash
# One device call (GPU machine, repo root, $OUT set by the device tool): three R-CED variants
# trained side by side on one GPU for MINUTES each (plus ~1 min of loading and compiling):
#   c05     c = 0.5 from the shipped weights (the CPU recipe, continued)
#   c05sdr  the same plus -0.01 * SI-SDR of the resynthesis
#   scratch c = 0.5 from scratch, lr 3e-3
# Usage: bash scripts/gpu/run_rced_device.sh [MINUTES] [PACK] [INIT]   (or PACK=... INIT=... env)
# PACK from scripts/gpu/pack_rced_data.py, INIT from `scripts/gpu/import_rced.py export`.
# Bring back $OUT/*_best.npz and import with `scripts/gpu/import_rced.py import`.
set -u
MIN=${1:-6.5}
PACK=${2:-${PACK:-.gpu/rced_pack.npz}}
INIT=${3:-${INIT:-.gpu/rced_init.npz}}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi -L
ls -l "$PACK" "$INIT" || exit 1
python3 -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.28
T=scripts/gpu/train_rced_jax.py
python3 $T --pack "$PACK" --out "$OUT" --tag c05 --init "$INIT" --minutes "$MIN" > "$OUT/c05.log" 2>&1 &
python3 $T --pack "$PACK" --out "$OUT" --tag c05sdr --init "$INIT" --sisdr-weight 0.01 --minutes "$MIN" > "$OUT/c05sdr.log" 2>&1 &
python3 $T --pack "$PACK" --out "$OUT" --tag scratch --lr 3e-3 --seed 1 --minutes "$MIN" > "$OUT/scratch.log" 2>&1 &
wait
tail -n 5 "$OUT"/c05.log "$OUT"/c05sdr.log "$OUT"/scratch.log
