#!/usr/bin/env bash
# Device calls (GPU machine, repo root, $OUT set by the device tool) for one session's GPU run.
#
#   bash scripts/gpu/run_device.sh stash FILE...   copy carried packs to /tmp/stash, which
#       survives between calls while the machine stays warm (30 s): more AM packs than one
#       64 MiB transfer holds travel in successive calls.
#   bash scripts/gpu/run_device.sh train AM_MIN RCED_MIN
#       the AM on every stashed/carried AM pack from the shipped weights, then two R-CED
#       variants from the shipped denoiser, ONE AT A TIME: two processes sharing the GPU ran
#       16x slower each than one alone (session 2's k9 vs k9c logs).
# Carry in the train call: .gpu/rced_pack.npz .gpu/rced_init.npz .gpu/am_init.npz.
#   bash scripts/gpu/run_device.sh rced MIN TAG INIT [trainer args...]
#       the R-CED from INIT on .gpu/rced_pack.npz and every stashed rced_pack_*.npz, MIN minutes,
#       MSE - 0.02 SI-SDR, lr 5e-4. Session 4 ran TAG=more (INIT = the shipped weights) and
#       TAG=aug (the same + --resample 0.1 --eq-db 4), one after the other, with packs b, c, d
#       stashed. Carry .gpu/rced_pack.npz and INIT; stash the other packs first.
#       Session 6 ran TAG=all then TAG=fl (the same + --mask-floor 0.26, the shipped floor, inside
#       the loss), both --lr 3e-4 from .gpu/rced_merge.npz, with packs b, voc and voc2 (two MLSA-
#       vocoded packs, pack_rced_data.py --vocode --seeds 3 / --seeds 4) stashed, then TAG=fls4
#       (--mask-floor 0.26 --sisdr-weight 0.04, 2.3 min). Results: the denoiser's MODEL_CARD.md.
#       INIT=none trains from scratch: with `--arch crced --lr 1e-3`, the paper's CR-CED (session 8
#       added it to the JAX trainer; parity with Keras 5e-7), the architecture not yet tried on a GPU.
#   bash scripts/gpu/run_device.sh am MIN INIT [trainer args...]
#       the AM alone from INIT on .gpu/am7_pack.npz (carried; it holds the validation set) and
#       every stashed am7_pack_*.npz, MIN minutes, lr 5e-4: the retrain behind the current
#       denoiser. Session 7 built the packs on the CPU (make_am_data.py --seeds 0 1 and 2 3 4
#       behind the phase-4 denoiser at the AM's input_mask_floor, then pack_am_data.py; the
#       denoiser's card) and saved the shipped AM's weights as .gpu/am_init3.npz. Stash
#       am7_pack_b and am7_pack_c first, then carry .gpu/am7_pack.npz and .gpu/am_init3.npz.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT" /tmp/stash
mode=$1; shift
if [ "$mode" = stash ]; then
    cp -v "$@" /tmp/stash/ && ls -l /tmp/stash
    exit
fi
if [ "$mode" = rced ]; then
    MIN=${1:-3.7}; TAG=${2:-rced}; INIT=${3:-.gpu/rced_init3.npz}; shift $(( $# < 3 ? $# : 3 ))
    nvidia-smi -L
    ls -l /tmp/stash .gpu
    export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
    packs=".gpu/rced_pack.npz $(ls /tmp/stash/rced_pack_*.npz)"
    init_arg=(--init "$INIT"); [ "$INIT" = none ] && init_arg=()
    python3 scripts/gpu/train_rced_jax.py --pack $packs --out "$OUT" --tag "$TAG" ${init_arg[@]+"${init_arg[@]}"} --sisdr-weight 0.02 \
        --select sisdr --lr 5e-4 --warmup 50 --minutes "$MIN" "$@" > "$OUT/$TAG.log" 2>&1
    grep -v "^W1\|warn" "$OUT/$TAG.log" | tail -n 12
    exit
fi
if [ "$mode" = am ]; then
    MIN=${1:-4.0}; INIT=${2:-.gpu/am_init3.npz}; shift $(( $# < 2 ? $# : 2 ))
    nvidia-smi -L
    ls -l /tmp/stash .gpu
    export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
    packs=".gpu/am7_pack.npz $(ls /tmp/stash/am7_pack_*.npz)"
    python3 scripts/gpu/train_am_jax.py --pack $packs --out "$OUT" --tag am --kernel 9 --init "$INIT" --lr 5e-4 \
        --warmup 100 --minutes "$MIN" "$@" > "$OUT/am.log" 2>&1
    grep -v "^W1\|warn" "$OUT/am.log" | tail -n 8
    exit
fi
AM_MIN=${1:-4.3}; RCED_MIN=${2:-1.6}
nvidia-smi -L
ls -l /tmp/stash .gpu
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
python3 scripts/gpu/train_am_jax.py --pack /tmp/stash/am_pack.npz /tmp/stash/am_pack_b.npz /tmp/stash/am_pack_c.npz \
    --out "$OUT" --tag am --kernel 9 --init .gpu/am_init.npz --lr 1e-3 --warmup 100 --minutes "$AM_MIN" > "$OUT/am.log" 2>&1
tail -n 4 "$OUT/am.log"
T=scripts/gpu/train_rced_jax.py
python3 $T --pack .gpu/rced_pack.npz --out "$OUT" --tag c05 --init .gpu/rced_init.npz --minutes "$RCED_MIN" \
    > "$OUT/rced.log" 2>&1
python3 $T --pack .gpu/rced_pack.npz --out "$OUT" --tag c05sdr --init .gpu/rced_init.npz --sisdr-weight 0.01 \
    --select sisdr --minutes "$RCED_MIN" >> "$OUT/rced.log" 2>&1
grep -h "done\|compiled\|best" "$OUT/rced.log" | tail -n 8
