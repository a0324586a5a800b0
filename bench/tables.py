"""Ground-truth tables of evaluated architectures, the pools that benchmarks score predictors and searches on.

Two formats are read, both JSON objects with a list of `rows` (each an `arch` with its `top1`, `macs`, `params`):

- what `python -m bench.predictors --weights ...` writes: a `card` (the supernet's) beside the rows;
- a third-party table such as `../shared/benchmarks/ofa_mbv3_imagenet_dynast.json`: the card's fields (`name`,
  `dataset`, `resolutions`, `n_classes`, `width_mult`) at the top level.

`read_table` returns the first form either way. Third-party tables are read where they lie at run time and never
copied into the repository (`shared_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.report import BENCH_DIR
from search.pareto import hypervolume, reference_point
from utils.errors import UsageError
from utils.io import read_json_object

ROW_KEYS = ("arch", "top1", "macs", "params")
CARD_KEYS = ("name", "dataset", "resolutions", "supernet")
FLAT_CARD_KEYS = ("name", "dataset", "resolutions", "n_classes", "width_mult")
SHARED_BENCHMARKS = BENCH_DIR.parent.parent / "shared" / "benchmarks"
DYNAST_TABLE = "ofa_mbv3_imagenet_dynast.json"
"""2,162 OFA MobileNetV3 w1.0 subnets measured on all of ImageNet validation (see its README for provenance)."""


def shared_table(name: str = DYNAST_TABLE) -> Path | None:
    """The third-party table `name` under `../shared/benchmarks/`, or None where this checkout has none."""
    path = SHARED_BENCHMARKS / name
    return path if path.is_file() else None


def read_table(path: str | Path) -> dict[str, Any]:
    """The ground-truth table at `path` as `{"card": ..., "rows": [...], ...}`; anything else is a `UsageError`."""
    table = read_json_object(path, "ground-truth table", "a table")
    if "card" not in table and all(k in table for k in FLAT_CARD_KEYS):
        card = {k: v for k, v in table.items() if k != "rows"}
        card["supernet"] = {"n_classes": table["n_classes"], "width_mult": table["width_mult"]}
        table = {"card": card, "rows": table.get("rows")}
    card, rows = table.get("card"), table.get("rows")
    if not isinstance(card, dict) or any(k not in card for k in CARD_KEYS) or not isinstance(rows, list) or not rows:
        raise UsageError(
            f"{path} is not a ground-truth table (a card, or its fields {', '.join(FLAT_CARD_KEYS)}, and rows)"
        )
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict) or any(k not in r for k in ROW_KEYS)), None)
    if bad is not None:
        raise UsageError(f"{path}: row {bad} is not an evaluated architecture ({', '.join(ROW_KEYS)})")
    return table


def objectives_of(records: list[dict[str, Any]], cost: str = "macs") -> np.ndarray:
    """The benchmarks' two objectives, top-1 error and `cost`, of stats records (pool rows or archive stats)."""
    return np.array([[100 - r["top1"], r[cost]] for r in records]).reshape(-1, 2)


def pool_hypervolume(table: dict[str, Any], cost: str = "macs") -> tuple[np.ndarray, float]:
    """The reference point fixed from the whole pool, and the hypervolume of the pool's true front under it."""
    pool = objectives_of(table["rows"], cost)
    ref = reference_point(pool)
    return ref, hypervolume(pool, ref)
