#!/usr/bin/env bash
# EDANAS: early-exit networks on OFA MobileNetV3 (search space eemobilenetv3). Each genome adds one threshold gene
# per exit position after stages 1-4 (0.1, 0.2 or 1 = no exit there). Every candidate gets exit heads trained with
# --method joint (the sum of every exit's cross-entropy; the backbone stays frozen unless --train_backbone), and
# leaves at the first exit whose softmax margin reaches its threshold. The second objective is avg_macs, the MACs
# per input averaged over where the validation images leave, predicted in the search by --sec_predictor.
# On the embedded digits by default (minutes on a CPU); pass --dataset/--data/--supernet_path for a real dataset.
# Then: python post_search.py ... --n_exits K, and python -m early_exit.train --subnet ... --method joint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --search_space eemobilenetv3 \
    --sec_obj avg_macs \
    --predictor gp --sec_predictor gp \
    --method joint \
    --warmup_ee_epochs 1 --ee_epochs 1 \
    --lr 32 --ur 32 \
    --n_doe 20 --iterations 4 --n_iter 4 \
    --seed 0 \
    --save "results/digits-edanas-seed0" \
    "$@"
