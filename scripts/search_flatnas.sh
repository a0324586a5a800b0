#!/usr/bin/env bash
# FlatNAS: networks whose accuracy survives perturbed weights (a flat loss landscape), which carries over to
# corrupted, out-of-distribution inputs. The first objective is top1_robust = alpha * top1_err + alpha_norm *
# (1 - alpha) * robustness, where robustness is the mean top-1 change on the validation split under multiplicative
# weight noise of amplitude sigma (--n_perturb draws per sigma; sigmas from --sigma_min to --sigma_max by
# --sigma_step are averaged) and alpha_norm = mean(top1_err) / mean(robustness) over the archive, refitted every
# iteration. A second surrogate predicts robustness. Add --ood_eval to record each network's mCE on corrupted
# validation images too (15 corruptions x 5 severities; slow), and --n_epochs 1 --optim sam --rho 0.05 to fine-tune
# every candidate with SAM before measuring it.
# On the embedded digits by default (minutes on a CPU); pass --dataset/--data/--supernet_path for a real dataset.
# Then: python post_search.py ... --prefer trade-off (or robustness, top1_robust), fine-tune with train.py
# (--optim sam), and python -m robustness.evaluate --subnet .../net.subnet for the chosen network's mCE.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --first_obj top1_robust --alpha 0.5 \
    --eval_robust --sigma_min 0.05 --sigma_max 0.05 --n_perturb 10 \
    --sec_obj macs \
    --predictor gp --sec_predictor gp \
    --lr 32 --ur 32 \
    --n_doe 20 --iterations 4 --n_iter 4 \
    --seed 0 \
    --save "results/digits-flatnas-seed0" \
    "$@"
