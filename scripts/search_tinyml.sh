#!/usr/bin/env bash
# A TinyML search (CNAS's constrained setting): low resolution and tight budgets on params, MACs and activations.
# The bounds are real constraints (violators never reach the front) and also shape the `tiny_ml` figure of merit
# (wp*(P + penalty*max(0, P-pmax)) + wm*(M + ...) + wa*(A + ...)), used here as the second objective.
# On the embedded digits by default; pass --dataset/--data/--supernet_path for a real dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --sec_obj tiny_ml \
    --pmax 2.5 `# params, millions` \
    --mmax 6 `# MACs, millions` \
    --amax 0.2 `# activations (CNAS definition), millions` \
    --wp 1 --wm 0.025 --wa 1 --penalty 1e10 \
    --lr 32 --ur 32 \
    --n_doe 100 --iterations 15 --n_iter 8 \
    --seed 0 \
    --save "results/digits-tinyml-seed0" \
    "$@"
