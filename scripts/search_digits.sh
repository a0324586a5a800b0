#!/usr/bin/env bash
# The embedded default: scikit-learn's digits at 32 px on the default supernet (trained once, cached in
# supernets/weights/). Finishes in minutes on a laptop CPU. Copy this file and edit the flags.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --sec_obj macs `# second objective: params | macs | activations | peak_act | tiny_ml` \
    --predictor as `# adaptive switching between rbf, gp, carts and mlp` \
    --n_doe 100 --iterations 15 --n_iter 8 \
    --lr 32 --ur 32 \
    --seed 0 \
    --save "results/digits-macs-seed0" \
    "$@"
