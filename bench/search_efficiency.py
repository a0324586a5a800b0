"""Search efficiency: hypervolume against true evaluations for msunas, nsga2 and random search, on a fixed pool.

The pool is a ground-truth table (`bench/tables.py`): by default the 2,162 OFA subnets measured on ImageNet in
`../shared/benchmarks/`, or one `bench/predictors.py` built. Every algorithm may only evaluate pool members: each
proposal is mapped to the nearest pool member not yet evaluated (Euclidean distance between genomes scaled to
[0, 1] per gene; ties to the lower index), and the archive records that member. Hypervolume (top-1 error against
MACs, then against params) uses one reference point fixed from the whole pool, so curves compare across algorithms
and seeds; 100 % is the hypervolume of the pool's true front. "Random pool draws" (rows drawn uniformly from the
pool, no search) is the reference the targets are stated against.

    python -m bench.search_efficiency --seeds 5
"""

from __future__ import annotations

import logging
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from acc_predictor import PREDICTORS, list_predictors
from bench.report import card_costs, card_space, image, machine, markdown_table, publish, result_path
from bench.tables import DYNAST_TABLE, objectives_of, pool_hypervolume, read_table, shared_table
from evaluator.backends import EvaluatorSpec, create_backend
from evaluator.base import EvalResult, Evaluator
from evaluator.registry import EVALUATORS
from search.algorithms import SearchContext, create_algorithm
from search.archive import Archive
from search.config import SearchConfig
from search.loop import Search
from search.objectives import create_objective
from search.pareto import hypervolume, non_dominated
from search.plots import plot_hypervolume
from search.state import SearchState
from search_space.base import Arch
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.errors import UsageError

log = logging.getLogger(__name__)
ALGORITHMS = ("msunas", "nsga2", "random")


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
            moved = float(distance[i])
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
                    extras={"pool_distance": moved},
                )
            )
        return results


LEVELS = (0.95, 0.98, 0.99)
COSTS = ("macs", "params")


@dataclass
class Trace:
    """One search: hypervolume fraction after every iteration, search-step times and the surrogate's records."""

    curve: list[tuple[int, float]]
    step_s: list[float] = field(default_factory=list)
    surrogate: list[dict[str, Any]] = field(default_factory=list)
    pool_distance: float | None = None
    """Mean scaled genome distance from a proposal to the pool member it got; None without proposals."""

    def needed(self, level: float) -> int | None:
        """Evaluations after which the hypervolume first reached `level` of the pool front's, or None."""
        return next((n for n, hv in self.curve if hv >= level), None)


def search_config(algorithm: str, seed: int, args: Any, workdir: Path, cost: str) -> SearchConfig:
    """The configuration of one benchmark search (baselines run `--baseline_iterations`)."""
    iterations = args.iterations if algorithm == "msunas" else args.baseline_iterations
    return SearchConfig(
        save=str(workdir / f"{algorithm}-{cost}-{seed}"),
        seed=seed,
        algorithm=algorithm,
        sec_obj=cost,
        iterations=iterations,
        n_doe=args.n_doe,
        n_iter=args.n_iter,
        predictor=args.predictor,
    )


def pool_context(table: dict[str, Any], cost: str, seed: int) -> SearchContext:
    """The search context of a benchmark search on the pool: top-1 error and `cost`, the card's cost function."""
    card = table["card"]
    objectives = [create_objective("top1"), create_objective(cost)]
    return SearchContext(card_space(card), objectives, [], card_costs(card), seed=seed)


def run_one(algorithm: str, seed: int, table: dict[str, Any], args: Any, workdir: Path, cost: str = "macs") -> Trace:
    """Run one search on the pool and trace it (hypervolume under the pool's reference point)."""
    cfg = search_config(algorithm, seed, args, workdir, cost)
    ref, best = pool_hypervolume(table, cost)
    ctx = pool_context(table, cost, seed)
    space = ctx.space
    algo = create_algorithm(
        algorithm, ctx, n_iter=cfg.n_iter, predictor=cfg.predictor, pop_size=cfg.pop_size, n_gen=cfg.n_gen
    )
    backend = create_backend("sequential", EvaluatorSpec("pool", {"table": table, "space": space}))
    search = Search(cfg, ctx, algo, backend, SearchState(archive=Archive(space)))
    trace = Trace(curve=[])
    original_tell, original_ask = search.tell, algo.ask

    def tell(results: list[EvalResult], iteration: int, candidates: list[Arch]) -> None:
        original_tell(results, iteration, candidates)
        values = objectives_of(search.state.archive.records(), cost)
        trace.curve.append((len(search.state.archive), hypervolume(values, ref) / best))
        if iteration > 0 and search.state.surrogate:
            trace.surrogate.append(search.state.surrogate)

    def ask(archive: Archive, iteration: int) -> tuple[list[Arch], dict[str, Any]]:
        start = time.perf_counter()
        out = original_ask(archive, iteration)
        trace.step_s.append(time.perf_counter() - start)
        return out

    search.tell = tell  # type: ignore[method-assign]
    algo.ask = ask  # type: ignore[method-assign]
    with EVALUATORS.register_temporarily("pool", PoolEvaluator):
        search.run()
    trace.pool_distance = float(np.mean([r["pool_distance"] for r in search.state.archive.records()]))
    return trace


def pool_draws(table: dict[str, Any], seed: int, n_doe: int, n_iter: int, iterations: int, cost: str) -> Trace:
    """Rows drawn uniformly from the pool without replacement, `n_doe` then `n_iter` at a time: no search at all."""
    ref, best = pool_hypervolume(table, cost)
    budget = min(n_doe + iterations * n_iter, len(table["rows"]))
    order = np.random.default_rng(seed).permutation(len(table["rows"]))[:budget]
    values = objectives_of([table["rows"][i] for i in order], cost)
    return Trace(curve=[(n, hypervolume(values[:n], ref) / best) for n in range(n_doe, budget + 1, n_iter)])


def step_seconds(table: dict[str, Any], args: Any, sizes: Sequence[int], repeats: int = 3) -> dict[int, float]:
    """Median CPU seconds of one msunas search step (fit, NSGA-II on the surrogate, choice) on archives of pool rows.

    CPU time of this (single-threaded) process, not wall time: on a shared machine other work does not inflate it.
    """
    ctx = pool_context(table, "macs", seed=0)
    space = ctx.space
    algo = create_algorithm("msunas", ctx, n_iter=args.n_iter, predictor=args.predictor)
    out = {}
    for size in sizes:
        rows = [table["rows"][i] for i in np.random.default_rng(size).permutation(len(table["rows"]))[:size]]
        archive = Archive(space)
        archive.add([EvalResult(r["arch"], "ok", r["top1"], r["params"], r["macs"], 0.0) for r in rows], 0)
        times = []
        for k in range(repeats):
            start = time.process_time()
            algo.ask(archive, k + 1)
            times.append(time.process_time() - start)
        out[size] = statistics.median(times)
    return out


def median_evals(values: list[int | None]) -> int | None:
    """Median of evaluation counts where a run that never got there (None) ranks beyond every count."""
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    return ranked[len(ranked) // 2]


def _shown(evals: int | None, budget: int) -> str:
    return f"> {budget}" if evals is None else str(evals)


def summarise(traces: dict[str, list[Trace]], budgets: dict[str, int]) -> tuple[list[list[object]], dict[str, Any]]:
    """Markdown rows and the JSON summary of one objective pair's runs."""
    rows, summary = [], {}
    for name, runs in traces.items():
        final = [t.curve[-1][1] for t in runs]
        reach = {level: [t.needed(level) for t in runs] for level in LEVELS}
        summary[name] = {
            "final_hv_fraction": final,
            "evals_to": {f"{level:.2f}": values for level, values in reach.items()},
            "curves": [t.curve for t in runs],
            "step_s": [t.step_s for t in runs],
            "pool_distance": [t.pool_distance for t in runs],
        }
        cells = [
            f"{_shown(median_evals(values), budgets[name])} ({sum(v is not None for v in values)}/{len(runs)})"
            for values in reach.values()
        ]
        spread = f"{100 * statistics.median(final):.1f} [{100 * min(final):.1f}, {100 * max(final):.1f}]"
        rows.append([name, budgets[name], *cells, spread])
    return rows, summary


def ratio(summary: dict[str, Any], a: str, b: str, level: str = "0.98") -> float | None:
    """Median evaluations of `a` to `level` over those of `b` (None when either median is beyond its budget)."""
    medians = [median_evals(summary[name]["evals_to"][level]) for name in (a, b)]
    return None if None in medians else medians[0] / medians[1]


def surrogate_quality(runs: list[Trace]) -> dict[str, float]:
    """Cross-validated and prospective Kendall tau of the surrogate, and how much better it predicted than measured."""
    records = [r for t in runs for r in t.surrogate if r.get("prospective_tau") is not None]
    bias = [
        p - m for r in records for p, m in zip(r["predicted_top1"], r["measured_top1"], strict=True) if m is not None
    ]
    return {
        "cv_tau": statistics.median(r["tau"] for r in records),
        "prospective_tau": statistics.median(r["prospective_tau"] for r in records),
        "optimism": statistics.mean(bias),
        "n_proposed": statistics.mean(r["n_proposed"] for r in records),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.search_efficiency", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table", default=None, help=f"ground-truth table (default: ../shared/benchmarks/{DYNAST_TABLE})"
    )
    parser.add_argument("--seeds", type=int_at_least(1), default=5, help="searches per algorithm")
    parser.add_argument("--n_doe", type=int_at_least(4), default=20, help="initial design size")
    parser.add_argument("--iterations", type=int_at_least(1), default=10, help="msunas iterations")
    parser.add_argument(
        "--baseline_iterations", type=int_at_least(1), default=50, help="nsga2 and random search iterations"
    )
    parser.add_argument("--n_iter", type=int_at_least(1), default=8, help="evaluations per iteration")
    parser.add_argument(
        "--predictor",
        default="gp",
        choices=list_predictors(aliases=True),
        help=f"surrogate of msunas. {PREDICTORS.describe()}",
    )
    parser.add_argument("--costs", nargs="+", default=list(COSTS), choices=COSTS, help="second objectives to run")
    parser.add_argument(
        "--step_sizes",
        nargs="+",
        type=int_at_least(4),
        default=[100, 200, 300],
        help="archive sizes at which to time one msunas search step",
    )
    args = parser.parse_args(argv)
    path = args.table or shared_table()
    if path is None:
        print(f"search_efficiency: skipped, {DYNAST_TABLE} is not under ../shared/benchmarks/ (pass --table)")
        return 0
    table = read_table(path)
    name = results_name(table, path)
    budgets = {
        "msunas": args.n_doe + args.iterations * args.n_iter,
        "nsga2": args.n_doe + args.baseline_iterations * args.n_iter,
        "random": args.n_doe + args.baseline_iterations * args.n_iter,
    }
    budgets["random pool draws"] = budgets["random"]
    steps = step_seconds(table, args, args.step_sizes)  # first, in a fresh process, for comparable timings
    results: dict[str, Any] = {"machine": machine(), "pool": len(table["rows"]), "args": vars(args), "costs": {}}
    results["step_s_by_archive"] = steps
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for cost in args.costs:
            traces: dict[str, list[Trace]] = {a: [] for a in ALGORITHMS}
            for algorithm in ALGORITHMS:
                for seed in tqdm(range(args.seeds), desc=f"{algorithm} ({cost})", unit="seed"):
                    traces[algorithm].append(run_one(algorithm, seed, table, args, Path(tmp), cost))
            traces["random pool draws"] = [
                pool_draws(table, seed, args.n_doe, args.n_iter, args.baseline_iterations, cost)
                for seed in range(args.seeds)
            ]
            rows, summary = summarise(traces, budgets)
            quality = surrogate_quality(traces["msunas"])
            ref, best = pool_hypervolume(table, cost)
            png = plot_bands(result_path(f"{name}_{cost}.png"), traces, f"top-1 error vs {cost}")
            results["costs"][cost] = {
                "ref_point": ref.tolist(),
                "pool_hv": best,
                "pool_front": len(non_dominated(objectives_of(table["rows"], cost))),
                "algorithms": summary,
                "surrogate": quality,
                "ratios_98": {
                    "msunas/nsga2": ratio(summary, "msunas", "nsga2"),
                    "msunas/random pool draws": ratio(summary, "msunas", "random pool draws"),
                },
            }
            sections.append(cost_section(cost, rows, results["costs"][cost], png, args.n_iter))
    publish(name, results, report(args, argv, table, sections, steps))
    return 0


def results_name(table: dict[str, Any], path: str | Path) -> str:
    """`search_efficiency` for the shared ImageNet table; other pools get their own results and README section."""
    if Path(path).resolve() == (shared_table() or Path()).resolve():
        return "search_efficiency"
    return "search_efficiency_" + re.sub(r"[^\w.-]+", "_", str(table["card"]["name"]))


def plot_bands(path: Path, traces: dict[str, list[Trace]], title: str) -> Path:
    """Median hypervolume fraction against evaluations, with the seeds' min-max band, per algorithm."""
    series, bands = {}, {}
    for name, runs in traces.items():
        length = min(len(t.curve) for t in runs)
        evals = [n for n, _ in runs[0].curve[:length]]
        values = np.array([[hv for _, hv in t.curve[:length]] for t in runs])
        series[name] = (evals, np.median(values, axis=0).tolist())
        bands[name] = (values.min(axis=0).tolist(), values.max(axis=0).tolist())
    return plot_hypervolume(path, series, title=f"{title}: HV / pool-front HV (median, min-max band)", bands=bands)


def cost_section(cost: str, rows: list[list[object]], result: dict[str, Any], png: Path, n_iter: int) -> str:
    """The markdown of one objective pair."""
    ratios = result["ratios_98"]
    quality = result["surrogate"]

    def shown(value: float | None) -> str:
        return "beyond the budget" if value is None else f"{value:.2f}"

    return "\n\n".join(
        [
            f"### Top-1 error vs {cost}",
            f"The pool's true front has {result['pool_front']} members.",
            markdown_table(
                ["algorithm", "budget", *(f"evaluations to {100 * lv:.0f} % (runs)" for lv in LEVELS), "final HV %"],
                rows,
            ),
            f"Evaluations to 98 %, msunas over nsga2: {shown(ratios['msunas/nsga2'])}; msunas over random pool draws: "
            f"{shown(ratios['msunas/random pool draws'])}. Surrogate (msunas iterations): cross-validated tau "
            f"{quality['cv_tau']:.3f}, prospective tau of its own proposals {quality['prospective_tau']:.3f}, "
            f"predicted top-1 of a proposal minus the measured top-1 of the pool member it mapped to "
            f"{quality['optimism']:+.2f} points on average; {quality['n_proposed']:.1f} of {n_iter} "
            "candidates per iteration came from NSGA-II (the rest random filler).",
            image(f"HV against evaluations, error vs {cost}", png),
        ]
    )


def report(
    args: Any, argv: Sequence[str] | None, table: dict[str, Any], sections: list[str], steps: dict[int, float]
) -> str:
    """The benchmark's README section."""
    command = "python -m bench.search_efficiency " + " ".join(sys.argv[1:] if argv is None else argv)
    card = table["card"]
    timing = ", ".join(f"{s:.2f} s at {n} entries" for n, s in steps.items())
    return "\n\n".join(
        [
            f"## Search efficiency: {card['name']} (`bench/search_efficiency.py`)",
            f"`{command.strip()}`",
            f"Pool: {len(table['rows'])} architectures of `{card['name']}` ({card['dataset']}). "
            f"{args.seeds} seeds per algorithm; {args.n_doe} initial evaluations, then {args.n_iter} per iteration. "
            "Proposals map to the nearest unevaluated pool member (Euclidean distance on genomes scaled to [0, 1] per "
            "gene). Cells: median evaluations (initial design included) to reach 95 / 98 / 99 % of the pool front's "
            "hypervolume, with how many runs got there within the budget; \"> budget\" when the median run did not.",
            *sections,
            f"msunas search step (predictor fit with its cross-validation report, NSGA-II on the surrogate, candidate "
            f"choice), median CPU time of 3: {timing}.",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
