#!/usr/bin/env bash
# One device call (GPU machine, repo root, $OUT set by the device tool): two AM variants of
# the flash-budget width (144 channels) trained side by side on one GPU for MINUTES each.
# Carry .gpu/ (made by scripts/gpu/pack_am_data.py). Bring back $OUT/*_best.npz and import
# with scripts/gpu/import_am.py.
set -u
MIN=${1:-6.8}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.4
python3 scripts/gpu/train_am_jax.py --pack .gpu/am_pack.npz --out "$OUT" --tag k9 --kernel 9 \
    --minutes "$MIN" > "$OUT/k9.log" 2>&1 &
python3 scripts/gpu/train_am_jax.py --pack .gpu/am_pack.npz --out "$OUT" --tag k15wd --kernel 15 \
    --weight-decay 1e-2 --minutes "$MIN" > "$OUT/k15wd.log" 2>&1 &
wait
tail -n 6 "$OUT"/k9.log "$OUT"/k15wd.log
