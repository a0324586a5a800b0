"""Live check: msunas against the real supernet evaluator, scored against the pool benchmark's front.

Runs `msunas.py` on the supernet of a ground-truth table (`bench/predictors.py`'s) with the search-efficiency
budget, then gives the archive's hypervolume after every iteration as a fraction of the pool front's, under the
pool's reference point (top-1 error vs MACs). The live search is not confined to the pool, so it can pass 100 %.

    python -m bench.search_live --table bench/cache/table-<supernet>.json
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import msunas
from bench.report import image, machine, publish, result_path
from bench.tables import objectives_of, pool_hypervolume, read_table
from evaluator import BACKENDS, list_backends
from search.pareto import hypervolume
from search.plots import plot_hypervolume
from utils.cli import ArgumentParser, int_at_least, run_cli

log = logging.getLogger(__name__)


def search_argv(table: dict, weights: Path, save: Path, args: object) -> list[str]:
    """The msunas.py command line of the live run: the table's supernet and resolutions, the benchmark's budget."""
    resolutions = table["card"]["resolutions"]
    return [
        *("--dataset", table["card"]["dataset"], "--supernet_path", str(weights), "--sec_obj", "macs"),
        *("--lr", str(min(resolutions)), "--ur", str(max(resolutions)), "--n_doe", str(args.n_doe)),
        *("--iterations", str(args.iterations), "--n_iter", str(args.n_iter), "--backend", args.backend),
        *("--n_workers", str(args.n_workers), "--device", args.device, "--seed", str(args.seed), "--save", str(save)),
    ]


def hv_curve(stats: dict, ref: np.ndarray, pool_hv: float) -> list[tuple[int, float]]:
    """(evaluations so far, HV / pool-front HV) after every iteration of a finished search's last stats record."""
    entries = stats["evaluations"]["entries"]
    curve = []
    for k in range(stats["iteration"] + 1):
        points = objectives_of([e["stats"] for e in entries if e["iteration"] <= k])
        curve.append((len(points), hypervolume(points, ref) / pool_hv))
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.search_live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="ground-truth table written by bench/predictors.py")
    parser.add_argument("--n_doe", type=int_at_least(4), default=40, help="initial design size")
    parser.add_argument("--iterations", type=int_at_least(1), default=10, help="search iterations")
    parser.add_argument("--n_iter", type=int_at_least(1), default=8, help="candidates per iteration")
    parser.add_argument("--backend", default="process", choices=list_backends(aliases=False), help=BACKENDS.describe())
    parser.add_argument("--n_workers", type=int_at_least(1), default=2, help="CPU workers of the process backend")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed")
    args = parser.parse_args(argv)
    table_path = Path(args.table)
    weights = table_path.with_name(table_path.name.removeprefix("table-")).with_suffix(".pth")
    if not table_path.is_file() or not weights.is_file():
        print(f"skipped: needs the table {table_path} and the supernet weights {weights} (bench/README.md)")
        return 0
    table = read_table(args.table)
    ref, pool_hv = pool_hypervolume(table)
    with tempfile.TemporaryDirectory() as tmp:
        command = search_argv(table, weights, Path(tmp) / "run", args)
        if run_cli(msunas.main, command) != 0:
            return 1
        last = max(Path(tmp, "run").glob("iter_*.stats"), key=lambda p: int(p.stem.removeprefix("iter_")))
        curve = hv_curve(json.loads(last.read_text()), ref, pool_hv)
    shown = " ".join(a if "/tmp" not in a else "<save>" for a in command)
    png = plot_hypervolume(
        result_path("search_live_hv.png"),
        {"msunas (live)": ([n for n, _ in curve], [hv for _, hv in curve])},
        title="HV / pool-front HV",
    )
    results = {
        "machine": machine(),
        "command": f"python msunas.py {shown}",
        "hv_fraction_of_pool_front": curve,
        "ref_point": ref.tolist(),
        "note": "live evaluations calibrate every architecture on the same images and use the whole validation "
        "split, as the pool table's evaluations did (its settings are recorded in the table)",
    }
    steps = ", ".join(f"{100 * hv:.0f} % after {n}" for n, hv in curve)
    section = "\n\n".join(
        [
            "## Live check: msunas against the real supernet evaluator (`python -m bench.search_live`)",
            f"`python -m bench.search_live --table {args.table}` runs `python msunas.py {shown}` (the pool "
            "benchmark's supernet and budget, live evaluations on the whole validation split).",
            f"Hypervolume as a fraction of the pool front's, under the pool's reference point: {steps} evaluations. "
            "Above 100 % means the live search found networks outside the pool's members.",
            image("live HV", png),
        ]
    )
    publish("search_live", results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
