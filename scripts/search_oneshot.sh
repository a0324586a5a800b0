#!/usr/bin/env bash
# One-shot NAS (SPOS with strict fairness): train a weight-sharing ShuffleNetV2 supernet so that every choice block of
# every layer is trained equally often (FairNAS), search it by evolution for the most accurate path within a MACs
# target, then train that architecture from scratch. Swap --search-space (proxyless, fbnet, spos, singlepath),
# --sample-strategy (uniform, fairstrict, differentiable) and --search-strategy (random_search, evolution,
# differentiable) to run any combination; a second search on the same --title reuses the trained supernet. The same
# supernet can also be searched by the surrogate-assisted loop:
#   python msunas.py --search_space spos --supernet_path results/oneshot/spos-fairstrict/supernet.pth --sec_obj macs
# On the embedded digits by default; pass --dataset/--data for a real dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TITLE=${TITLE:-spos-fairstrict}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-10}
SAVE=${SAVE:-results/oneshot}

"$PY" -m oneshot.search \
    --title "$TITLE" --save "$SAVE" \
    --search-space spos \
    --sample-strategy fairstrict \
    --search-strategy evolution \
    --target-hc 100 `# millions of --hc-metric (MACs): the ShuffleNetV2 paths at 32 px span 85-127` \
    --epochs 10 \
    --generation_num 10 --population 20 --parent-num 5 \
    --seed 0 \
    "$@"

"$PY" -m oneshot.train --title "$TITLE" --save "$SAVE" --search-strategy evolution --epochs "$TRAIN_EPOCHS"
