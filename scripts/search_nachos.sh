#!/usr/bin/env bash
# NACHOS: early-exit networks under a MAC budget (search space cbnmobilenetv3). Each genome adds 4 exit flags (at
# least one on; a genome with none is repaired, never penalised). Exit heads carry a confidence and are trained with
# --method bernulli: confidence-weighted cross-entropy, a prior on the confidences, and (--w_beta) a differentiable
# penalty on the expected MACs above --mmax. Thresholds on the cumulative confidence are tuned on the validation
# split, then lowered while avg_macs > --mmax and top-1 >= --top1min. In the search, --mmax bounds avg_macs: NSGA-II
# on the surrogates folds it into the objective with phi (the feasible fraction), real evaluations enforce it.
# On the embedded digits by default (minutes on a CPU); pass --dataset/--data/--supernet_path for a real dataset.
# Then: python post_search.py ... --n_exits K, and python -m early_exit.train --subnet ... --method bernulli.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --search_space cbnmobilenetv3 \
    --sec_obj avg_macs \
    --mmax 4 `# average MACs per input, millions` \
    --top1min 80 `# the threshold repair never goes below this validation top-1 (percent)` \
    --predictor gp --sec_predictor gp \
    --method bernulli --w_alpha 1 --w_beta 1 \
    --warmup_ee_epochs 1 --ee_epochs 1 \
    --lr 32 --ur 32 \
    --n_doe 20 --iterations 4 --n_iter 4 \
    --seed 0 \
    --save "results/digits-nachos-seed0" \
    "$@"
