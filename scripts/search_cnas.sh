#!/usr/bin/env bash
# CNAS on CIFAR-10 with OFA's released ImageNet supernet from disk: upstream's defaults (100 initial architectures,
# 30 iterations of 8), resolutions 192-256, 5 epochs of fine-tuning per evaluation, 5,000 validation images carved
# from the training set. Evaluations are spread over every visible GPU (one per evaluation).
#   DATA=~/data/cifar10 SUPERNET=~/weights/ofa_mbv3_d234_e346_k357_w1.0 bash scripts/search_cnas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:?set DATA to the folder holding cifar-10-batches-py}
SUPERNET=${SUPERNET:?set SUPERNET to ofa_mbv3_d234_e346_k357_w1.0 (or _w1.2 with --width_mult 1.2)}

"$PY" msunas.py \
    --dataset cifar10 --data "$DATA" --n_classes 10 \
    --supernet_path "$SUPERNET" --width_mult 1.0 \
    --search_space mobilenetv3 \
    --sec_obj macs \
    --predictor as \
    --n_doe 100 --iterations 30 --n_iter 8 \
    --n_epochs 5 --vld_size 5000 \
    --lr 192 --ur 256 \
    --backend process --gpu 1 \
    --seed 0 \
    --save "results/cifar10-macs-seed0" \
    "$@"
