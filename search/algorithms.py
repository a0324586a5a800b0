"""Search algorithms behind one ask interface: MSuNAS (surrogate-assisted NSGA-II) and two baselines.

Each iteration an algorithm proposes architectures not yet in the archive; the loop evaluates them for real. All
randomness of iteration k comes from `(seed, k)`, so a resumed search proposes exactly what an uninterrupted one
would have.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.variable import get
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.operators.mutation.pm import PM, mut_pm
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize

from acc_predictor import create_predictor, min_points
from acc_predictor.base import Predictor
from search.archive import Archive
from search.objectives import (
    Constraint,
    Objective,
    constraint_matrix,
    feasible_front,
    fit_objectives,
    measured_keys,
    objective_matrix,
)
from search.pareto import reference_point, select_hypervolume, select_spread
from search.surrogate import CostRecords, SurrogateFeatures
from search_space.base import Arch, CostFunction, SearchSpace
from utils.registry import Registry

log = logging.getLogger(__name__)


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of everything random in iteration `iteration` of a search seeded with `seed`."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


@dataclass
class SearchContext:
    """What every algorithm needs: the space, the objectives (top-1 error first), constraints and exact costs."""

    space: SearchSpace
    objectives: list[Objective]
    constraints: list[Constraint]
    costs: CostFunction
    seed: int = 0
    cost_records: CostRecords = field(init=False, repr=False)
    """The exact cost metrics of genomes, computed without training (memoised)."""
    declared: list[Objective] = field(init=False, repr=False)
    """The objectives as the search declares them, before any is normalised over the archive."""

    def __post_init__(self) -> None:
        self.cost_records = CostRecords(self.space, self.costs)
        self.declared = list(self.objectives)

    def fit_objectives(self, records: list[dict[str, Any]]) -> None:
        """Normalise the objectives that depend on the archive (`top1_robust`'s `alpha_norm`) over `records`."""
        self.objectives = fit_objectives(self.declared, records)

    def fitted_record(self) -> dict[str, Any]:
        """What the current objectives were fitted to, for `iter_{k}.stats` (upstream's `alpha_norm` among it)."""
        fitted = {o.name: dict(o.params) for o in self.objectives if o.fit is not None}
        alpha_norm = [p["alpha_norm"] for p in fitted.values() if "alpha_norm" in p]
        return {"fitted_objectives": fitted, **({"alpha_norm": alpha_norm[0]} if alpha_norm else {})} if fitted else {}

    @property
    def predicted_keys(self) -> tuple[str, ...]:
        """Record keys besides top-1 that objectives or constraints need and only an evaluation measures.

        A surrogate search predicts each with a second predictor (`avg_macs` of early-exit networks).
        """
        return tuple(k for k in measured_keys(self.objectives, self.constraints) if k != "top1")

    def blended(self) -> list[Constraint]:
        """Constraints on predicted keys, which the surrogate folds into the objective (NACHOS) instead of `G`."""
        return [c for c in self.constraints if c.key in self.predicted_keys]

    def objectives_of(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Objective matrix `[n, n_obj]` (all minimised) of stats records."""
        return objective_matrix(records, self.objectives).reshape(len(records), len(self.objectives))

    def violations_of(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Constraint matrix `[n, n_constr]` (<= 0 feasible) of stats records."""
        if not self.constraints:
            return np.zeros((len(records), 0))
        return constraint_matrix(records, self.constraints).reshape(len(records), len(self.constraints))

    def bounded_objectives_of(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Objective matrix of `records` moved onto the constraint bounds they exceed (feasible records unchanged).

        A value beyond its bound counts as the bound itself, so the matrix spans what feasible architectures can
        reach: a penalty objective such as `tiny_ml` (`1e10` per unit of excess) adds no penalty here.
        """
        bounded = [dict(r) for r in records]
        for record in bounded:
            for c in self.constraints:
                if c.violation(record) > 0:
                    record[c.key] = c.bound
        return self.objectives_of(bounded)

    def front(self, archive: Archive) -> np.ndarray:
        """Indices of the archive's feasible non-dominated entries."""
        return feasible_front(archive.records(), self.objectives, self.constraints)


class CanonicalRepair(Repair):
    """Rounds, clips and canonicalises genomes, so that NSGA-II never keeps two encodings of one network."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem: Problem, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        return self.space.canonical(np.clip(np.round(X.astype(float)), self.space.xl, self.space.xu).astype(np.int64))


class IntegerPolynomialMutation(PM):
    """Polynomial mutation of integer genes on `[xl - 0.5, xu + 0.5]`, to be rounded by the repair.

    On `[xl, xu]` itself the end values would get half the probability mass of a middle value after rounding;
    widening by half a step gives every value its full step. Genes with a single value are never mutated.
    """

    def _do(self, problem: Problem, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
        fixed = problem.xl == problem.xu
        xl = np.where(fixed, problem.xl, problem.xl - 0.5)
        xu = np.where(fixed, problem.xu, problem.xu + 0.5)
        eta = get(self.eta, size=len(X))
        prob_var = self.get_prob_var(problem, size=len(X))
        return mut_pm(
            X.astype(float), xl, xu, eta, prob_var, at_least_once=self.at_least_once, random_state=random_state
        )


class SurrogateProblem(Problem):
    """Predicted top-1 error plus exactly computed costs of integer genomes; constraints as `G <= 0`.

    The predictor regresses top-1 error on `features` of the genomes; without a predictor only costs are known.
    `secondary` predictors give the other keys only an evaluation measures (`SearchContext.predicted_keys`). A
    constraint on such a key is not a `G` column but folds into the record NACHOS's way: with `phi` the feasible
    fraction of the evaluated population, the value becomes `phi * c + (1 - phi) * max(0, c - bound)`, so a
    population with few feasible members is pushed by the violation and one with many by the value itself.
    """

    def __init__(
        self,
        ctx: SearchContext,
        predictor: Predictor | None,
        features: SurrogateFeatures | None = None,
        secondary: Mapping[str, Predictor] | None = None,
    ) -> None:
        self.blended = ctx.blended()
        self.hard = [c for c in ctx.constraints if c not in self.blended]
        super().__init__(
            n_var=ctx.space.n_var,
            n_obj=len(ctx.objectives),
            n_ieq_constr=len(self.hard),
            xl=ctx.space.xl,
            xu=ctx.space.xu,
            vtype=int,
        )
        if (predictor is not None or secondary) and features is None:
            raise ValueError("a surrogate problem with a predictor needs the features it was fitted on")
        self.ctx = ctx
        self.predictor = predictor
        self.features = features
        self.secondary = dict(secondary or {})
        self.phi: float | None = None

    def records(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Stats records with exact costs and (when there are predictors) predicted top-1 and secondary keys."""
        X = np.asarray(X, dtype=np.int64)
        records = self.ctx.cost_records(X)
        if self.features is None or (self.predictor is None and not self.secondary):
            return records
        inputs = self.features(X, records)
        if self.predictor is not None:
            for record, err in zip(records, self.predictor.predict(inputs), strict=True):
                record["top1"] = 100.0 - float(err)
        for key, predictor in self.secondary.items():
            for record, value in zip(records, predictor.predict(inputs), strict=True):
                record[key] = float(value)
        return records

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        records = self.records(X)
        for c in self.blended:
            excess = np.maximum([c.violation(r) for r in records], 0.0)
            self.phi = float(np.mean(excess <= 0))
            for record, over in zip(records, excess, strict=True):
                record[c.key] = self.phi * record[c.key] + (1 - self.phi) * over
        out["F"] = self.ctx.objectives_of(records)
        if self.hard:
            out["G"] = constraint_matrix(records, self.hard).reshape(len(records), len(self.hard))


def _unknown_unique(archs: list[Arch], archive: Archive) -> list[Arch]:
    """`archs` without those already tried and without repeats, order kept."""
    seen = archive.known()
    out = []
    for arch in archs:
        key = archive.key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


class Algorithm(ABC):
    """Proposes architectures to evaluate: an initial design, then `n` per iteration (ask)."""

    name = ""

    def __init__(self, ctx: SearchContext, n_iter: int, **_: Any) -> None:
        self.ctx = ctx
        self.n_iter = n_iter

    @classmethod
    def min_points(cls, predictor: str) -> int:
        """The fewest successful evaluations `ask` proposes from, in a search whose `--predictor` is `predictor`."""
        return 1

    def initial(self, n: int) -> list[Arch]:
        """The initial design: the smallest and largest architectures plus random ones, `n` in all."""
        rng = np.random.default_rng(iteration_seed(self.ctx.seed, 0))
        fixed = [self.ctx.space.smallest(), self.ctx.space.largest()]
        keys = {tuple(self.ctx.space.encode(a)) for a in fixed}
        rest = [a for a in self.ctx.space.sample(n + 2, rng) if tuple(self.ctx.space.encode(a)) not in keys]
        return (fixed + rest)[:n]

    @abstractmethod
    def ask(self, archive: Archive, iteration: int) -> tuple[list[Arch], dict[str, Any]]:
        """Up to `n_iter` new architectures for iteration `iteration`, and what to record about how they came."""

    def fill_random(self, archs: list[Arch], archive: Archive, rng: np.random.Generator) -> list[Arch]:
        """`archs` topped up with random unknown architectures to `n_iter` (when the proposal ran short)."""
        archs = _unknown_unique(archs, archive)[: self.n_iter]
        if len(archs) < self.n_iter:
            extra = _unknown_unique(archs + self.ctx.space.sample(4 * self.n_iter, rng), archive)
            archs = extra[: self.n_iter]
        return archs


class EvolutionaryAlgorithm(Algorithm):
    """An algorithm that breeds genomes with NSGA-II, assembled from pymoo operator objects.

    `crossover` and `mutation` default to two-point crossover and integer polynomial mutation; the mutation's result and
    every offspring are rounded, clipped and canonicalised by `CanonicalRepair` (unless `repair` is given), and
    duplicates are eliminated.
    """

    def __init__(
        self,
        ctx: SearchContext,
        n_iter: int,
        pop_size: int = 40,
        crossover: Crossover | None = None,
        mutation: Mutation | None = None,
        repair: Repair | None = None,
        **_: Any,
    ) -> None:
        super().__init__(ctx, n_iter)
        self.pop_size = pop_size
        self.repair = repair or CanonicalRepair(ctx.space)
        self.crossover = crossover or TwoPointCrossover(prob=0.9)
        self.mutation = mutation or IntegerPolynomialMutation(prob=1.0, eta=1.0, vtype=float, repair=self.repair)

    def nsga2(self, **kwargs: Any) -> NSGA2:
        """A pymoo NSGA-II with this algorithm's operators (`kwargs`: population size, sampling, ...)."""
        return NSGA2(
            crossover=self.crossover,
            mutation=self.mutation,
            repair=self.repair,
            eliminate_duplicates=True,
            **kwargs,
        )


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")


def create_algorithm(name: str, ctx: SearchContext, **kwargs: Any) -> Algorithm:
    """Build the algorithm registered under `name`."""
    return ALGORITHMS.create(name, ctx=ctx, **kwargs)


@ALGORITHMS.register("random", help="new architectures drawn uniformly at random")
class RandomSearch(Algorithm):
    """Random search: `n_iter` uniformly drawn new architectures per iteration."""

    name = "random"

    def ask(self, archive: Archive, iteration: int) -> tuple[list[Arch], dict[str, Any]]:
        """Random unknown architectures."""
        rng = np.random.default_rng(iteration_seed(self.ctx.seed, iteration))
        return self.fill_random([], archive, rng), {}


@ALGORITHMS.register("nsga2", help="NSGA-II without a surrogate: every offspring is evaluated")
class PlainNSGA2(EvolutionaryAlgorithm):
    """NSGA-II without a surrogate: parents survive from the archive by rank and crowding; every child is evaluated."""

    name = "nsga2"

    def ask(self, archive: Archive, iteration: int) -> tuple[list[Arch], dict[str, Any]]:
        """`n_iter` offspring of the surviving population."""
        seed = iteration_seed(self.ctx.seed, iteration)
        rng = np.random.default_rng(seed)
        problem = SurrogateProblem(self.ctx, predictor=None)
        survivors = self.survivors(problem, archive, rng)
        algorithm = self.nsga2(pop_size=len(survivors), n_offsprings=self.n_iter, sampling=survivors)
        algorithm.setup(problem, seed=seed)
        algorithm.tell(infills=algorithm.ask())
        offspring = algorithm.ask()
        archs = [self.ctx.space.decode(x) for x in offspring.get("X")]
        return self.fill_random(archs, archive, rng), {}

    def survivors(self, problem: Problem, archive: Archive, rng: np.random.Generator) -> Population:
        """Up to `pop_size` parents from the archive by rank and crowding; ties are broken by `rng`."""
        records = archive.records()
        pop = Population.new("X", archive.genomes())
        pop.set("F", self.ctx.objectives_of(records))
        if self.ctx.constraints:
            pop.set("G", self.ctx.violations_of(records))
        return RankAndCrowding().do(problem, pop, n_survive=min(self.pop_size, len(pop)), random_state=rng)


@ALGORITHMS.register("msunas", help="surrogate-assisted NSGA-II, candidates spread along the predicted front")
class MSuNAS(EvolutionaryAlgorithm):
    """Surrogate-assisted search: fit the predictor, run NSGA-II on it, choose a spread subset of the front.

    Keys besides top-1 that only evaluations measure (`SearchContext.predicted_keys`, e.g. `avg_macs`) get their
    own predictor, `sec_predictor` (default: the same kind as `predictor`).
    """

    name = "msunas"

    def __init__(
        self,
        ctx: SearchContext,
        n_iter: int,
        predictor: str = "gp",
        n_gen: int = 20,
        sec_predictor: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ctx, n_iter, **kwargs)
        self.features = SurrogateFeatures(ctx.space, ctx.costs, cost_records=ctx.cost_records)
        self.predictor_name = predictor
        self.sec_predictor_name = sec_predictor or predictor
        self.new_predictor(0)  # an unknown name fails before any evaluation
        self.new_predictor(0, self.sec_predictor_name)
        self.n_gen = n_gen

    @classmethod
    def min_points(cls, predictor: str) -> int:
        """What the predictor needs to fit (its registry's `min_points`)."""
        return min_points(predictor)

    def new_predictor(self, seed: int, name: str | None = None) -> Predictor:
        """An unfitted predictor (`name`, default `predictor`) over this search's surrogate features."""
        return create_predictor(name or self.predictor_name, xl=self.features.xl, xu=self.features.xu, seed=seed)

    def fit_predictor(self, archive: Archive, seed: int) -> Predictor:
        """The predictor fitted on the archive's features and top-1 errors (with its out-of-sample report)."""
        errors = np.array([100.0 - float(r["top1"]) for r in archive.records()])
        return self.new_predictor(seed).fit(self.features(archive.genomes()), errors)

    def fit_secondary(self, archive: Archive, seed: int) -> dict[str, Predictor]:
        """One `sec_predictor` per predicted key, fitted on the archive's measured values of it."""
        inputs = self.features(archive.genomes())
        return {
            key: self.new_predictor(seed, self.sec_predictor_name).fit(
                inputs, np.array([float(r[key]) for r in archive.records()])
            )
            for key in self.ctx.predicted_keys
        }

    def ask(self, archive: Archive, iteration: int) -> tuple[list[Arch], dict[str, Any]]:
        """Candidates on the predicted front that the archive's front does not dominate, spread along it."""
        seed = iteration_seed(self.ctx.seed, iteration)
        predictor = self.fit_predictor(archive, seed)
        secondary = self.fit_secondary(archive, seed)
        problem = SurrogateProblem(self.ctx, predictor, self.features, secondary)
        front = self.ctx.front(archive)
        rng = np.random.default_rng(seed)
        start = np.concatenate([archive.genomes()[front], _genomes(self.ctx.space, self.pop_size, rng)])[
            : self.pop_size
        ]
        algorithm = self.nsga2(pop_size=self.pop_size, sampling=start)
        result = minimize(problem, algorithm, ("n_gen", self.n_gen), seed=seed, verbose=False)
        pool = result.algorithm.pop
        archs = _unknown_unique([self.ctx.space.decode(x) for x in pool.get("X")], archive)
        proposed = self._choose(problem, archs, archive, front)
        chosen = self.fill_random(proposed, archive, rng)
        predicted = problem.records(
            np.array([self.ctx.space.encode(a) for a in chosen]).reshape(-1, self.ctx.space.n_var)
        )
        record = {
            **_surrogate_record(predictor, self.predictor_name),
            "n_proposed": len(proposed),
            "predicted_top1": [r["top1"] for r in predicted],
        }
        for key, sec in secondary.items():
            record[key] = {**_surrogate_record(sec, self.sec_predictor_name), "predicted": [r[key] for r in predicted]}
        if problem.blended:
            record["phi"] = problem.phi
        return chosen, {"surrogate": record}

    def _choose(self, problem: SurrogateProblem, archs: list[Arch], archive: Archive, front: np.ndarray) -> list[Arch]:
        if not archs:
            return []
        genomes = np.array([self.ctx.space.encode(a) for a in archs])
        records = problem.records(genomes)
        F = self.ctx.objectives_of(records)
        feasible = (self.ctx.violations_of(records) <= 0).all(axis=1)
        order = np.flatnonzero(feasible) if feasible.any() else np.arange(len(archs))
        if F.shape[1] == 1:
            best = order[np.argsort(F[order, 0], kind="stable")]
            return [archs[i] for i in best[: self.n_iter]]
        anchors = self.ctx.objectives_of([archive.entries[i].stats for i in front]) if len(front) else None
        if anchors is None:
            picked = select_spread(F[order], self.n_iter, anchors)
        else:
            ref = reference_point(self.ctx.bounded_objectives_of(archive.records()))
            picked = select_hypervolume(F[order], self.n_iter, anchors, ref)
        return [archs[order[i]] for i in picked]


def _genomes(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.array([space.encode(a) for a in space.sample(n, rng)]).reshape(-1, space.n_var)


def _surrogate_record(predictor: Predictor, name: str) -> dict[str, Any]:
    report = predictor.report.as_dict() if predictor.report is not None else {}
    return {"name": name, "winner": getattr(predictor, "winner", predictor.name), **report}
