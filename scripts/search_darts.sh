#!/usr/bin/env bash
# DARTS in the loop on digits: the outer search chooses DARTS skeletons (normal cells per stage, nodes per cell,
# channels, resolution 16-32 px) against MACs; every evaluation searches the skeleton's cells with DARTS for
# --inner_epochs epochs (penalised by --inner_strength times their expected MACs), trains the network it found from
# fresh weights for --n_epochs and validates it. For a GPU: the largest skeleton takes about 85 s on one H200
# (10 + 10 epochs, 32 px), many minutes on a CPU. --search_space darts1d: 1-D cells on the images read row by row.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --search_space darts \
    --dataset digits \
    --sec_obj macs `# params | macs | activations | peak_act | latency: also what DARTS penalises` \
    --predictor gp \
    --n_doe 20 --iterations 10 --n_iter 4 \
    --lr 16 --ur 32 --rstep 8 \
    --inner_epochs 10 --inner_strength 0.1 \
    --n_epochs 10 \
    --seed 0 \
    --save "results/darts-digits-macs-seed0" \
    "$@"
