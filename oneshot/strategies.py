"""Search strategies over a trained one-shot supernet: `random_search`, `evolution` (SPOS) and `differentiable`.

Every strategy ranks paths by a `PathScorer` (validation top-1 with inherited weights and recalibrated batch norm)
and keeps to an optional hardware target (a raw count of `hc_metric`, from the space's `LookupTable`):

- `random_search`: `random_iteration` distinct paths within the target, drawn by rejection sampling with at most
  `sample_attempts` draws per wanted path (a warning says when the target leaves too few), the best by score.
- `evolution` (SPOS): an initial population of `population` distinct paths within the target; each of
  `generation_num` generations keeps the best `parent_num` and breeds `population − parent_num` new paths, half by
  mutation (every layer of a random parent redrawn with probability `mutation_prob`) and half by crossover (each
  layer from one of two distinct random parents), rejecting paths over the target or seen before (a shortfall is
  filled with random paths within the target).
- `differentiable`: trains the architecture parameters for `search_steps` steps on training batches (never the
  validation split the path is scored on) with cross-entropy plus `hardware_constraint_loss`, the Gumbel
  temperature falling from `tau_max` to `tau_min`; then takes the arg-max path, repairs it greedily when it is over
  the target (`repair_path`) and scores it. It starts from the supernet's current `alpha` (so a supernet trained
  with the `differentiable` sample strategy continues its joint search) and changes nothing else: the weights are
  frozen and the batch-norm statistics it disturbs are restored.

All random choices come from `seed`, so the same seed gives the same outcome. A target below the smallest path's
cost is a `UsageError`. Add a strategy by subclassing `SearchStrategy` and registering it with
`@register_search_strategy("name")`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from data import DatasetSplits
from oneshot.hc_loss import to_millions
from oneshot.lut import LookupTable
from oneshot.scoring import PathScorer
from oneshot.supernet import OneShotSupernet
from oneshot.training import (
    ArchitectureStep,
    ArchOptimConfig,
    gumbel_generator,
    hc_checks,
    temperature,
    training_batches,
)
from training.config import first_failure
from utils.errors import UsageError
from utils.registry import Registry

log = logging.getLogger(__name__)

ArchPath = tuple[int, ...]
Scorer = Callable[[Sequence[int]], float]
"""What ranks paths: `path -> validation top-1` (a `PathScorer`)."""


@dataclass(frozen=True)
class SearchStrategyConfig:
    """The settings of every search strategy (upstream's flags and defaults); each strategy reads its own.

    `target` is a raw count of `hc_metric` (None: no hardware constraint). The per-generation counts of new paths
    are SPOS's: `mutation_num` by mutation and `crossover_num` by crossover, together `population − parent_num`.
    """

    random_iteration: int = 1000
    generation_num: int = 20
    population: int = 60
    parent_num: int = 10
    mutation_prob: float = 0.1
    arch: ArchOptimConfig = field(default_factory=ArchOptimConfig)
    hc_weight: float = 0.005
    target: int | None = None
    hc_metric: str = "macs"
    search_steps: int = 100
    batch_size: int = 64
    mode: str = "gumbel"
    tau_max: float = 5.0
    tau_min: float = 0.5
    sample_attempts: int = 50
    seed: int = 0

    @property
    def mutation_num(self) -> int:
        """New paths per generation made by mutation: half of `population − parent_num` (rounded down)."""
        return (self.population - self.parent_num) // 2

    @property
    def crossover_num(self) -> int:
        """New paths per generation made by crossover: the other half."""
        return self.population - self.parent_num - self.mutation_num

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            "--random-iteration must be >= 1": self.random_iteration >= 1,
            "--generation-num must be >= 1": self.generation_num >= 1,
            "--parent-num must be >= 2 (crossover needs two parents)": self.parent_num >= 2,
            "--population must be >= --parent-num": self.population >= self.parent_num,
            "--mutation-prob must lie in [0, 1]": 0 <= self.mutation_prob <= 1,
            **self.arch.checks(),
            **hc_checks(self.hc_weight, self.target, self.hc_metric, self.mode, self.tau_max, self.tau_min),
            "--search-steps must be >= 1": self.search_steps >= 1,
            "--batch-size must be >= 2": self.batch_size >= 2,
            "--sample-attempts must be >= 1": self.sample_attempts >= 1,
        }

    def validate(self) -> SearchStrategyConfig:
        """`self`, after every check passed (a `UsageError` with the first failure's message otherwise)."""
        first_failure(self.checks())
        return self


@dataclass(frozen=True)
class ScoredPath:
    """One scored candidate: its path, validation top-1 (percent), raw cost (`hc_metric`) and evolution generation."""

    path: list[int]
    top1: float
    cost: int
    generation: int | None = None


@dataclass
class SearchOutcome:
    """What a search found: the best path, its validation top-1 and raw cost, and everything scored on the way.

    `history`: every scored candidate in scoring order; `trace`: the per-step record of a `differentiable` search
    (`step`, `tau`, `loss`, `expected_cost` raw), empty for the others; `extras`: strategy-specific facts.
    """

    strategy: str
    best_path: list[int]
    best_top1: float
    best_cost: int
    hc_metric: str
    target: int | None
    history: list[ScoredPath]
    trace: list[dict[str, float]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the outcome."""
        return asdict(self)


class SearchContext:
    """What a strategy works with: supernet, lookup table, scorer, data, seeded generator, target checks."""

    def __init__(
        self,
        supernet: OneShotSupernet,
        lut: LookupTable,
        scorer: Scorer,
        splits: DatasetSplits,
        resolution: int,
        device: torch.device,
        config: SearchStrategyConfig,
        progress: bool,
    ) -> None:
        self.supernet = supernet
        self.spec = supernet.spec
        self.lut = lut
        self.scorer = scorer
        self.splits = splits
        self.resolution = resolution
        self.device = device
        self.config = config
        self.progress = progress
        self.rng = np.random.default_rng(config.seed)
        self.history: list[ScoredPath] = []

    def cost(self, path: Sequence[int]) -> int:
        """The raw `hc_metric` cost of `path`."""
        return self.lut.cost(path, self.config.hc_metric)

    def within(self, path: Sequence[int]) -> bool:
        """Whether `path` keeps to the target (always, without one)."""
        return self.config.target is None or self.cost(path) <= self.config.target

    def score(self, path: Sequence[int], generation: int | None = None) -> ScoredPath:
        """Score `path` and append it to the history."""
        scored = ScoredPath(list(path), float(self.scorer(list(path))), self.cost(path), generation)
        self.history.append(scored)
        return scored

    def score_all(self, paths: Sequence[ArchPath], generation: int | None = None, desc: str = "") -> list[ScoredPath]:
        """Score every path in order (with a progress bar)."""
        return [self.score(p, generation) for p in tqdm(paths, desc=desc, unit="path", disable=not self.progress)]

    def random_paths(self, n: int, exclude: set[ArchPath]) -> list[ArchPath]:
        """Up to `n` distinct random paths within the target and not in `exclude` (which they are added to).

        Rejection sampling with at most `sample_attempts · n` draws; fewer paths come back when the target (or the
        space's size) leaves too few, with a warning.
        """
        found: list[ArchPath] = []
        rejected: set[ArchPath] = set()
        budget = self.config.sample_attempts * n
        draws = 0
        while len(found) < n and draws < budget:
            draws += 1
            path = tuple(self.spec.sample_path(self.rng))
            if path in exclude or path in rejected:
                continue
            if self.within(path):
                found.append(path)
                exclude.add(path)
            else:
                rejected.add(path)
        if len(found) < n:
            log.warning(
                "found only %d of %d distinct paths%s in %d random draws (%d over the target): %s",
                len(found),
                n,
                self.target_text(),
                draws,
                len(rejected),
                "the target excludes nearly every path" if len(rejected) > len(found) else "the space is small",
            )
        return found

    def target_text(self) -> str:
        """` within <target> M <metric>`, or nothing without a target."""
        target = self.config.target
        return "" if target is None else f" within {to_millions(target):g} M {self.config.hc_metric}"


def check_target(lut: LookupTable, target: int | None, metric: str) -> None:
    """A `UsageError` when `target` (raw) is below the smallest path's cost, saying that cost in millions."""
    if target is None:
        return
    _, smallest = lut.smallest(metric)
    if target < smallest:
        raise UsageError(
            f"--target-hc {to_millions(target):g} is below the smallest path's {metric}: "
            f"{to_millions(smallest):.4f} M"
        )


def best_of(history: Sequence[ScoredPath]) -> ScoredPath:
    """The highest top-1, ties going to the lower cost, then to the first scored."""
    return min(enumerate(history), key=lambda item: (-item[1].top1, item[1].cost, item[0]))[1]


class SearchStrategy(ABC):
    """A search strategy: `search(...)` returns the best path it finds within the target."""

    name: ClassVar[str]

    def __init__(self, config: SearchStrategyConfig) -> None:
        self.config = config.validate()

    def search(
        self,
        supernet: OneShotSupernet,
        lut: LookupTable,
        scorer: Scorer | PathScorer,
        splits: DatasetSplits,
        resolution: int,
        device: str | torch.device,
        progress: bool = True,
    ) -> SearchOutcome:
        """Search `supernet`'s space with `scorer` (validation top-1) and `lut` (costs, the target)."""
        cfg = self.config
        check_target(lut, cfg.target, cfg.hc_metric)
        ctx = SearchContext(supernet, lut, scorer, splits, resolution, torch.device(device), cfg, progress)
        start = time.perf_counter()
        trace, extras = self.explore(ctx)
        if not ctx.history:
            raise RuntimeError(f"{self.name} scored no path")
        best = best_of(ctx.history)
        outcome = SearchOutcome(
            strategy=self.name,
            best_path=list(best.path),
            best_top1=best.top1,
            best_cost=best.cost,
            hc_metric=cfg.hc_metric,
            target=cfg.target,
            history=ctx.history,
            trace=trace,
            extras=extras,
            seconds=time.perf_counter() - start,
        )
        log.info(
            "%s: best path %s, top-1 %.2f %%, %.3f M %s (%d paths scored in %.1f s)",
            self.name,
            outcome.best_path,
            outcome.best_top1,
            to_millions(outcome.best_cost),
            cfg.hc_metric,
            len(ctx.history),
            outcome.seconds,
        )
        return outcome

    @abstractmethod
    def explore(self, ctx: SearchContext) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Score candidates into `ctx.history`; returns the per-step trace and the extras of the outcome."""


SEARCH_STRATEGIES = Registry[SearchStrategy]("search strategy")
register_search_strategy = SEARCH_STRATEGIES.register_class


def create_search_strategy(name: str, config: SearchStrategyConfig | None = None) -> SearchStrategy:
    """The search strategy `name` with `config` (default settings when None); an unknown name is a `UsageError`."""
    return SEARCH_STRATEGIES.create(name, config=config or SearchStrategyConfig())


def list_search_strategies() -> list[str]:
    """Every registered search strategy, sorted."""
    return SEARCH_STRATEGIES.names()


@register_search_strategy("random_search", help="the best of --random-iteration random paths within the target")
class RandomSearch(SearchStrategy):
    """Random search: score `random_iteration` distinct random paths within the target, keep the best."""

    name = "random_search"

    def explore(self, ctx: SearchContext) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Draw the paths, then score them."""
        paths = ctx.random_paths(self.config.random_iteration, set())
        if not paths:
            path, _ = ctx.lut.smallest(self.config.hc_metric)
            log.warning("no random path kept to the target: scoring the smallest path")
            paths = [tuple(path)]
        ctx.score_all(paths, desc="random search")
        return [], {"paths": len(paths)}


@register_search_strategy("evolution", help="SPOS evolution: mutation and crossover of the best --parent-num paths")
class Evolution(SearchStrategy):
    """SPOS evolution: keep the best `parent_num`, breed the rest by mutation and crossover, `generation_num` times."""

    name = "evolution"

    def explore(self, ctx: SearchContext) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Evolve the population generation by generation, scoring every new path."""
        cfg = self.config
        seen: set[ArchPath] = set()
        population = ctx.random_paths(cfg.population, seen)
        if not population:
            path, _ = ctx.lut.smallest(cfg.hc_metric)
            population = [tuple(path)]
            seen.add(population[0])
        scores: dict[ArchPath, ScoredPath] = {}
        trace = []
        for generation in range(cfg.generation_num):
            new = [p for p in population if p not in scores]
            for scored in ctx.score_all(new, generation, desc=f"generation {generation + 1}/{cfg.generation_num}"):
                scores[tuple(scored.path)] = scored
            ranked = sorted(population, key=lambda p: (-scores[p].top1, scores[p].cost))
            parents = ranked[: cfg.parent_num]
            trace.append({"generation": generation, "scored": len(new), "best_top1": scores[ranked[0]].top1})
            log.info("generation %d: best top-1 %.2f %%", generation + 1, scores[ranked[0]].top1)
            if generation + 1 < cfg.generation_num:
                population = parents + self.offspring(ctx, parents, seen)
        return trace, {"generations": cfg.generation_num}

    def offspring(self, ctx: SearchContext, parents: list[ArchPath], seen: set[ArchPath]) -> list[ArchPath]:
        """`mutation_num` mutants and `crossover_num` crosses of `parents`, new and within the target.

        Each kind has `sample_attempts` tries per wanted path; a shortfall is filled with random paths.
        """
        cfg = self.config
        children = self.breed(ctx, cfg.mutation_num, lambda: self.mutate(ctx, parents), seen)
        if len(parents) >= 2:
            children += self.breed(ctx, cfg.crossover_num, lambda: self.crossover(ctx, parents), seen)
        wanted = cfg.population - len(parents)
        if len(children) < wanted:
            children += ctx.random_paths(wanted - len(children), seen)
        return children

    def breed(self, ctx: SearchContext, n: int, make: Callable[[], ArchPath], seen: set[ArchPath]) -> list[ArchPath]:
        """Up to `n` children from `make()`, each new (not in `seen`, which they join) and within the target."""
        children: list[ArchPath] = []
        for _ in range(self.config.sample_attempts * n):
            if len(children) >= n:
                break
            child = make()
            if child not in seen and ctx.within(child):
                children.append(child)
                seen.add(child)
        return children

    def mutate(self, ctx: SearchContext, parents: list[ArchPath]) -> ArchPath:
        """A random parent with each layer redrawn uniformly with probability `mutation_prob`."""
        parent = parents[int(ctx.rng.integers(len(parents)))]
        return tuple(
            int(ctx.rng.integers(n)) if ctx.rng.random() < self.config.mutation_prob else c
            for c, n in zip(parent, ctx.spec.n_choices, strict=True)
        )

    def crossover(self, ctx: SearchContext, parents: list[ArchPath]) -> ArchPath:
        """Each layer from one of two distinct random parents, with equal chance."""
        i, j = ctx.rng.choice(len(parents), size=2, replace=False)
        a, b = parents[int(i)], parents[int(j)]
        return tuple(x if ctx.rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))


@register_search_strategy(
    "differentiable", help="train the architecture parameters (CE + hardware loss), take the arg-max path"
)
class DifferentiableSearch(SearchStrategy):
    """Differentiable search: train `alpha` with the weights frozen, take the arg-max path, repair it, score it."""

    name = "differentiable"

    def explore(self, ctx: SearchContext) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Train the architecture parameters, then score the (repaired) arg-max path."""
        cfg = self.config
        supernet = ctx.supernet.to(ctx.device)
        stepper = ArchitectureStep.for_config(supernet, ctx.lut, cfg)
        stream = training_batches(
            ctx.splits, ctx.resolution, cfg.batch_size, torch.Generator().manual_seed(cfg.seed), ctx.device
        )
        noise = gumbel_generator(cfg.seed)
        buffers = {name: b.detach().clone() for name, b in supernet.named_buffers()}
        was_training = supernet.training
        trace = []
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(cfg.seed)
                supernet.train()
                for step in tqdm(range(cfg.search_steps), desc="differentiable", unit="step", disable=not ctx.progress):
                    tau = temperature(step, cfg.search_steps, cfg.tau_max, cfg.tau_min)
                    x, y = next(stream)
                    loss, expected = stepper.step(x, y, tau, noise)
                    trace.append({"step": step, "tau": tau, "loss": loss, "expected_cost": expected})
        finally:
            with torch.no_grad():
                for name, b in supernet.named_buffers():
                    b.copy_(buffers[name])
            supernet.train(was_training)
        argmax = supernet.argmax_path()
        log_probs = [p.detach().double().log().cpu().numpy() for p in supernet.probabilities()]
        path = argmax
        if cfg.target is not None:
            path = repair_path(argmax, log_probs, ctx.lut, cfg.target, cfg.hc_metric)
        ctx.score(path)
        extras = {"argmax_path": argmax, "argmax_cost": ctx.cost(argmax), "repaired": path != argmax}
        if path != argmax:
            log.info("the arg-max path costs %.3f M: repaired%s", to_millions(ctx.cost(argmax)), ctx.target_text())
        return trace, extras


def repair_path(
    path: Sequence[int], log_probs: Sequence[np.ndarray], lut: LookupTable, target: int, metric: str = "macs"
) -> list[int]:
    """`path` brought within `target` (raw `metric`) by greedy single-layer switches to cheaper candidates.

    Each switch is the one losing the least log-probability per unit of cost saved (`log_probs[l][c]`: the
    architecture's log-probability of candidate c in layer l), until the cost is within the target. Should no
    switch save anything while still over it, the table's smallest path is returned.
    """
    path = [int(c) for c in path]
    cost = lut.cost(path, metric)
    while cost > target:
        best: tuple[tuple[float, float, int, int], int, int, int] | None = None
        for layer, current in enumerate(path):
            for c in range(len(log_probs[layer])):
                if c == current:
                    continue
                trial = [*path[:layer], c, *path[layer + 1 :]]
                saved = cost - lut.cost(trial, metric)
                if saved <= 0:
                    continue
                key = (float(log_probs[layer][current] - log_probs[layer][c]) / saved, -saved, layer, c)
                if best is None or key < best[0]:
                    best = (key, layer, c, cost - saved)
        if best is None:
            return lut.smallest(metric)[0]
        _, layer, c, cost = best
        path[layer] = c
    return path
