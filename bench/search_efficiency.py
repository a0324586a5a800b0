"""Search efficiency: hypervolume against true evaluations for msunas, nsga2 and random search, on a fixed pool.

The pool is the ground-truth table of `bench/predictors.py` (random architectures evaluated once by the supernet
evaluator). Every algorithm may only evaluate pool members: each proposal is mapped to the nearest pool member not
yet evaluated (Euclidean distance between genomes scaled to [0, 1] per gene; ties to the lower index), and the
archive records that member. Hypervolume (top-1 error vs MACs) uses one reference point fixed from the whole pool,
so curves compare across algorithms and seeds; 100 % is the hypervolume of the pool's true front.

    python -m bench.search_efficiency --table bench/cache/table-<supernet>.json --seeds 5
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acc_predictor import PREDICTORS, list_predictors
from bench.report import card_space, image, machine, markdown_table, publish, result_path
from evaluator.backends import EvaluatorSpec, create_backend
from evaluator.base import EvalResult, Evaluator
from evaluator.registry import EVALUATORS
from search.algorithms import SearchContext, create_algorithm
from search.archive import Archive
from search.config import SearchConfig
from search.loop import Search
from search.objectives import create_objective
from search.pareto import hypervolume, non_dominated, reference_point
from search.plots import plot_hypervolume
from search.state import SearchState
from search_space.base import Arch
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.errors import UsageError
from utils.io import read_json_object

log = logging.getLogger(__name__)
ALGORITHMS = ("msunas", "nsga2", "random")
ROW_KEYS = ("arch", "top1", "macs", "params")
CARD_KEYS = ("name", "dataset", "resolutions", "supernet")


def read_table(path: str) -> dict[str, Any]:
    """The ground-truth table `bench/predictors.py` wrote at `path`; anything else is a `UsageError`."""
    table = read_json_object(path, "ground-truth table", "a table")
    card, rows = table.get("card"), table.get("rows")
    if not isinstance(card, dict) or any(k not in card for k in CARD_KEYS) or not isinstance(rows, list) or not rows:
        raise UsageError(f"{path} is not a ground-truth table of python -m bench.predictors (a card and its rows)")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict) or any(k not in r for k in ROW_KEYS)), None)
    if bad is not None:
        raise UsageError(f"{path}: row {bad} is not an evaluated architecture ({', '.join(ROW_KEYS)})")
    return table


def error_and_macs(records: list[dict[str, Any]]) -> np.ndarray:
    """The benchmark's two objectives, top-1 error and MACs, of stats records (pool rows or archive stats)."""
    return np.array([[100 - r["top1"], r["macs"]] for r in records]).reshape(-1, 2)


def pool_hypervolume(table: dict[str, Any]) -> tuple[np.ndarray, float]:
    """The reference point fixed from the whole pool, and the hypervolume of the pool's true front under it."""
    pool = error_and_macs(table["rows"])
    ref = reference_point(pool)
    return ref, hypervolume(pool, ref)


class PoolEvaluator(Evaluator):
    """Table look-up: a proposal is answered by the nearest pool member not yet handed out.

    Registered as `pool` only while a benchmark search runs (`run_one`), so it never reaches the product's CLI.
    """

    name = "pool"

    @classmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """Not buildable from search flags: the benchmark hands it its table."""
        raise UsageError("the pool evaluator is built by bench/search_efficiency.py from a ground-truth table")

    def __init__(self, table: dict[str, Any], space: OFAMobileNetV3Space) -> None:
        self.space = space
        self.rows = table["rows"]
        genomes = np.array([space.encode(r["arch"]) for r in self.rows], dtype=float)
        self.scale = np.maximum(space.xu, 1)
        self.points = genomes / self.scale
        self.free = np.ones(len(self.rows), dtype=bool)

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """The nearest free pool member of each proposal, in order."""
        results = []
        for arch in archs:
            if not self.free.any():
                results.append(EvalResult.failure(arch, "pool exhausted"))
                continue
            distance = np.linalg.norm(self.points - self.space.encode(arch) / self.scale, axis=1)
            distance[~self.free] = np.inf
            i = int(np.argmin(distance))
            self.free[i] = False
            row = self.rows[i]
            results.append(
                EvalResult(
                    arch=row["arch"],
                    status="ok",
                    top1=row["top1"],
                    params=row["params"],
                    macs=row["macs"],
                    activations=row.get("activations", 0.0),
                )
            )
        return results


def run_one(algorithm: str, seed: int, table: dict[str, Any], args: Any, workdir: Path) -> list[tuple[int, np.ndarray]]:
    """(evaluations so far, objective matrix of the archive) after every iteration of one search."""
    card = table["card"]
    space = card_space(card)
    cfg = SearchConfig(
        save=str(workdir / f"{algorithm}-{seed}"),
        seed=seed,
        algorithm=algorithm,
        sec_obj="macs",
        iterations=args.iterations,
        n_doe=args.n_doe,
        n_iter=args.n_iter,
        predictor=args.predictor,
    )
    objectives = [create_objective("top1"), create_objective("macs")]
    cost = space.cost_function(card["supernet"]["n_classes"], card["supernet"]["width_mult"])
    ctx = SearchContext(space, objectives, [], cost, seed=seed)
    algo = create_algorithm(
        algorithm, ctx, n_iter=cfg.n_iter, predictor=cfg.predictor, pop_size=cfg.pop_size, n_gen=cfg.n_gen
    )
    backend = create_backend("sequential", EvaluatorSpec("pool", {"table": table, "space": space}))
    search = Search(cfg, ctx, algo, backend, SearchState(archive=Archive(space)))
    curve = []
    original_tell = search.tell

    def tell(results: list[EvalResult], iteration: int, candidates: list[Arch]) -> None:
        original_tell(results, iteration, candidates)
        curve.append((len(search.state.archive), search.objective_values().copy()))

    search.tell = tell  # type: ignore[method-assign]
    with EVALUATORS.register_temporarily("pool", PoolEvaluator):
        search.run()
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.search_efficiency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="ground-truth table written by python -m bench.predictors")
    parser.add_argument("--seeds", type=int_at_least(1), default=5, help="searches per algorithm")
    parser.add_argument("--n_doe", type=int_at_least(2), default=40, help="initial design size")
    parser.add_argument("--iterations", type=int_at_least(0), default=10, help="search iterations")
    parser.add_argument("--n_iter", type=int_at_least(1), default=8, help="evaluations per iteration")
    parser.add_argument(
        "--predictor",
        default="as",
        choices=list_predictors(aliases=True),
        help=f"surrogate of msunas. {PREDICTORS.describe()}",
    )
    args = parser.parse_args(argv)
    table = read_table(args.table)
    rows = table["rows"]
    ref, best_hv = pool_hypervolume(table)
    budget = args.n_doe + args.iterations * args.n_iter
    curves: dict[str, list[list[tuple[int, float]]]] = {a: [] for a in ALGORITHMS}
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ALGORITHMS:
            for seed in range(args.seeds):
                run = run_one(algorithm, seed, table, args, Path(tmp))
                curves[algorithm].append([(n, hypervolume(F, ref) / best_hv) for n, F in run])
                log.info(
                    "%s seed %d: %.1f%% of the pool's HV after %d evaluations",
                    algorithm,
                    seed,
                    100 * curves[algorithm][-1][-1][1],
                    run[-1][0],
                )

    def needed(curve: list[tuple[int, float]], level: float = 0.98) -> int | None:
        return next((n for n, hv in curve if hv >= level), None)

    rows_md, summary = [], {}
    for algorithm, runs in curves.items():
        final = [c[-1][1] for c in runs]
        reach = [needed(c) for c in runs]
        reached = [r for r in reach if r is not None]
        summary[algorithm] = {"final_hv_fraction": final, "evals_to_98": reach, "curves": runs}
        rows_md.append(
            [
                algorithm,
                f"{100 * statistics.median(final):.1f} [{100 * min(final):.1f}, {100 * max(final):.1f}]",
                f"{len(reached)}/{len(runs)}",
                f"{statistics.median(reached):.0f}" if reached else f"> {budget}",
            ]
        )
    mean_curves = {
        a: ([n for n, _ in runs[0]], [statistics.median(c[i][1] for c in runs) for i in range(len(runs[0]))])
        for a, runs in curves.items()
    }
    png = plot_hypervolume(result_path("search_efficiency.png"), mean_curves, title="median HV / pool-front HV")
    front = non_dominated(error_and_macs(rows))
    results = {
        "machine": machine(),
        "pool": len(rows),
        "pool_front": len(front),
        "budget": budget,
        "ref_point": ref.tolist(),
        "pool_hv": best_hv,
        "args": vars(args),
        "algorithms": summary,
    }
    section = "\n\n".join(
        [
            "## Search efficiency (`bench/search_efficiency.py`)",
            f"`python -m bench.search_efficiency {' '.join(sys.argv[1:] if argv is None else argv)}`".strip(),
            f"Pool: {len(rows)} architectures of `{table['card']['name']}` ({table['card']['dataset']}) with "
            f"true top-1 from the supernet evaluator; its true front has {len(front)} members. "
            f"Budget: {budget} true evaluations "
            f"({args.n_doe} initial + {args.iterations} x {args.n_iter}), {args.seeds} seeds, objectives top-1 error "
            "and MACs. Proposals map to the nearest unevaluated pool member (Euclidean distance on genomes scaled to "
            "[0, 1] per gene).",
            markdown_table(
                [
                    "algorithm",
                    "final HV, % of pool front [min, max]",
                    "runs reaching 98 %",
                    "median evaluations to 98 %",
                ],
                rows_md,
            ),
            image("median HV against evaluations", png),
        ]
    )
    publish("search_efficiency", results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
