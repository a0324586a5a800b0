#!/usr/bin/env bash
# Two-level search with PIT inside: MSuNAS chooses each candidate's depth, kernels, expansions and resolution, then
# PIT prunes its output channels by trainable masks (MACs regulariser) for --inner_epochs before it is fine-tuned
# and measured. The archive keeps the outer genome; every metric is the refined network's (the unrefined subnet's
# costs are under `outer` in net.stats). post_search.py writes the refined networks; train.py fine-tunes them.
# On the embedded digits by default; pass --dataset/--data/--supernet_path for a real dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" msunas.py \
    --dataset digits \
    --sec_obj macs \
    --inner_search pit \
    --inner_epochs 2 `# epochs of the mask search per candidate` \
    --inner_strength 1.0 `# weight of MACs relative to the unrefined candidate's` \
    --n_epochs 1 `# fine-tuning of the refined network` \
    --lr 32 --ur 32 \
    --n_doe 40 --iterations 6 --n_iter 8 \
    --seed 0 \
    --save "results/digits-inner-pit-seed0" \
    "$@"
