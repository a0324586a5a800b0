#!/usr/bin/env bash
# Two-level search with FBNetV2 inside: MSuNAS chooses each candidate's depth, kernels, expansions and resolution,
# then FBNetV2 chooses its widths and depthwise kernels by Gumbel-softmax (systolic-array latency regulariser) for
# --inner_epochs before it is fine-tuned and measured. The archive keeps the outer genome; every metric is the
# refined network's (the unrefined subnet's costs are under `outer` in net.stats). post_search.py writes the refined
# networks; train.py fine-tunes them.
# On the embedded digits by default; pass --dataset/--data/--supernet_path for a real dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --sec_obj latency \
    --systolic_array 16x16 `# the array latency is counted on` \
    --inner_search fbnetv2 \
    --inner_epochs 2 `# epochs of the width and kernel search per candidate` \
    --inner_strength 1.0 `# weight of latency relative to the unrefined candidate's` \
    --n_epochs 1 `# fine-tuning of the refined network` \
    --lr 32 --ur 32 \
    --n_doe 40 --iterations 6 --n_iter 8 \
    --seed 0 \
    --save "results/digits-inner-fbnetv2-seed0" \
    "$@"
