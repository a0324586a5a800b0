"""The search loop: initial design, then ask → evaluate → tell per iteration, with files written after each step.

The state of a search (`search/state.py`) is its archive plus the fixed hypervolume reference point and the
hypervolume history, all stored in every `iter_{k}.stats`; resuming from one continues exactly where it stopped.
Evaluations already written by an interrupted iteration are read back rather than run again.

The reference point is taken from the initial design with every row moved onto the constraint bounds it exceeds
(`SearchContext.bounded_objectives_of`): feasible rows count as they are, an infeasible one as if it met its
bounds. The hypervolume counts feasible rows only, so infeasible values (such as `tiny_ml`'s `1e10` penalty) must
not set its scale. A search whose evaluations leave fewer successes than its algorithm needs ends with a one-line
`UsageError` pointing at `save/failed/`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evaluator.backends import Backend
from evaluator.base import EvalResult
from search.algorithms import Algorithm, SearchContext
from search.config import SearchConfig
from search.files import candidate_dir, record_failures, reusable_result, write_archive_csv, write_iteration
from search.pareto import hypervolume, reference_point
from search.plots import plot_front, plot_hypervolume
from search.state import SearchState
from search.surrogate import with_outcome
from search_space.base import Arch
from utils.errors import UsageError

log = logging.getLogger(__name__)


class Search:
    """Drives an `Algorithm` over a `Backend`, writing upstream-compatible files into `save`."""

    def __init__(
        self, config: SearchConfig, ctx: SearchContext, algorithm: Algorithm, backend: Backend, state: SearchState
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.algorithm = algorithm
        self.backend = backend
        self.state = state
        self.save = Path(config.save)

    def evaluate(self, archs: list[Arch], iteration: int) -> list[EvalResult]:
        """Evaluate `archs` for iteration `iteration`, reusing complete results an interrupted run left behind."""
        dirs = [candidate_dir(self.save, iteration, i) for i in range(len(archs))]
        results: list[EvalResult | None] = [reusable_result(d, a) for d, a in zip(dirs, archs, strict=True)]
        todo = [i for i, r in enumerate(results) if r is None]
        if len(todo) < len(archs):
            log.info("iteration %d: reusing %d evaluation(s) already on disk", iteration, len(archs) - len(todo))
        if todo:
            fresh = self.backend.evaluate([archs[i] for i in todo], [dirs[i] for i in todo])
            for i, result in zip(todo, fresh, strict=True):
                results[i] = result
        done = [r for r in results if r is not None]
        record_failures(self.save, iteration, done, dirs)
        return done

    def objective_values(self) -> np.ndarray:
        """True objective matrix of the archive (top-1 error first)."""
        return self.ctx.objectives_of(self.state.archive.records())

    def feasible(self) -> np.ndarray:
        """Which archive entries satisfy every constraint."""
        return (self.ctx.violations_of(self.state.archive.records()) <= 0).all(axis=1)

    def tell(self, results: list[EvalResult], iteration: int, candidates: list[Arch]) -> None:
        """Add results to the archive, update the hypervolume and write this iteration's files."""
        state = self.state
        state.archive.add(results, iteration)
        state.iteration = iteration
        self.require_successes(1, "the hypervolume")
        if iteration == 0:
            self.ctx.fit_objectives(state.archive.normalising_records(0))
        F = self.objective_values()
        if state.ref_point is None:
            state.ref_point = tuple(reference_point(self.ctx.bounded_objectives_of(state.archive.records())).tolist())
        feasible = self.feasible()
        hv = hypervolume(F[feasible], state.ref_point) if feasible.any() else 0.0
        state.hv_history.append(hv)
        state.n_evals.append(len(state.archive) + len(state.archive.failed))
        self.write(candidates)

    def write(self, candidates: list[Arch]) -> None:
        """`iter_{k}.stats`, `archive.csv`, `pareto_iter_{k}.png` and `hv.png` for the current state."""
        state, cfg = self.state, self.config
        F = self.objective_values()
        record = {**state.to_record(cfg, F, candidates), **self.ctx.fitted_record()}
        write_iteration(self.save, state.iteration, record)
        write_archive_csv(self.save, state.archive)
        front = self.ctx.front(state.archive)
        chosen = [i for i, e in enumerate(state.archive.entries) if e.iteration == state.iteration]
        plot_front(
            self.save / f"pareto_iter_{state.iteration}.png",
            F,
            F[front],
            tuple(o.label for o in self.ctx.objectives),
            F_chosen=F[chosen] if chosen else None,
            title=f"{cfg.algorithm} iteration {state.iteration} ({len(state.archive)} evaluated)",
        )
        plot_hypervolume(self.save / "hv.png", state.hv_history, state.n_evals, label=cfg.algorithm)

    def run(self) -> SearchState:
        """Run (or continue) the search to `--iterations`, or until `--patience` iterations bring no HV gain."""
        cfg, state = self.config, self.state
        if state.iteration >= 0:  # resumed: the objectives as the last iteration normalised them
            self.ctx.fit_objectives(state.archive.normalising_records(state.iteration))
        if state.iteration < 0:
            start = time.perf_counter()
            design = self.algorithm.initial(cfg.n_doe)
            log.info("initial design: evaluating %d architectures", len(design))
            self.tell(self.evaluate(design, 0), 0, design)
            log.info(
                "iteration 0: HV %.4f, %d evaluated in %.1f s",
                state.hv_history[-1],
                len(design),
                time.perf_counter() - start,
            )
        with tqdm(
            total=cfg.iterations, initial=min(state.iteration, cfg.iterations), desc="search", unit="iter"
        ) as bar:
            while state.iteration < cfg.iterations and not self.stalled():
                iteration = state.iteration + 1
                self.require_successes(
                    self.algorithm.min_points(cfg.predictor), f"--algorithm {cfg.algorithm} --predictor {cfg.predictor}"
                )
                t0 = time.perf_counter()
                self.ctx.fit_objectives(state.archive.normalising_records(iteration))
                candidates, info = self.algorithm.ask(state.archive, iteration)
                t1 = time.perf_counter()
                if not candidates:
                    log.info("no new architecture left to propose; stopping")
                    break
                results = self.evaluate(candidates, iteration)
                t2 = time.perf_counter()
                state.surrogate = with_outcome(info.get("surrogate", {}), results)
                self.tell(results, iteration, candidates)
                bar.update(1)
                self.summarise(iteration, len(results), t1 - t0, t2 - t1)
        return state

    def require_successes(self, needed: int, who: str) -> None:
        """A one-line `UsageError` when the archive holds fewer than `needed` successful evaluations (for `who`)."""
        archive = self.state.archive
        if len(archive) < needed:
            tried = len(archive) + len(archive.failed)
            raise UsageError(
                f"only {len(archive)} of {tried} evaluations succeeded, but {who} needs at least {needed}: see why in"
                f" {self.save / 'failed'}/, fix it or raise --n_doe"
            )

    def stalled(self) -> bool:
        """Whether the last `--patience` iterations brought no hypervolume gain."""
        patience, hv = self.config.patience, self.state.hv_history
        return patience is not None and len(hv) > patience and max(hv[-patience:]) <= hv[-patience - 1]

    def summarise(self, iteration: int, n: int, search_s: float, eval_s: float) -> None:
        """The one-line summary of an iteration."""
        hv = self.state.hv_history
        surrogate = self.state.surrogate
        tau = f", predictor tau {surrogate['tau']:.3f} ({surrogate.get('winner')})" if "tau" in surrogate else ""
        log.info(
            "iteration %d: HV %.4f (%+.4f), front %d, %d evaluated%s; time: evaluation %.1f s, search %.1f s",
            iteration,
            hv[-1],
            hv[-1] - hv[-2],
            len(self.ctx.front(self.state.archive)),
            n,
            tau,
            eval_s,
            search_s,
        )


def check_save_folder(config: SearchConfig) -> None:
    """Refuse a `--save` folder that already holds a search, unless resuming it (nothing is overwritten)."""
    save = Path(config.save)
    if config.resume is None and save.exists() and any(save.glob("iter_*.stats")):
        raise UsageError(
            f"--save {save} already holds a search; resume it with --resume {save}/iter_<k>.stats or choose another"
            " --save"
        )
