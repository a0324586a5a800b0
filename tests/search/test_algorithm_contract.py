"""The contract every registered search algorithm keeps, on the tiny test space with a synthetic accuracy."""

import numpy as np
import pytest
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.operators.mutation.pm import PM

from evaluator import EvalResult
from search.algorithms import ALGORITHMS, EvolutionaryAlgorithm, SearchContext, SurrogateProblem, create_algorithm
from search.archive import Archive
from search.objectives import build_constraints, create_objective
from tests.search_space.tiny_space import TinySpace

SPACE = TinySpace(lr=16, ur=32, rstep=4)
COSTS = SPACE.cost_function(10)


def context(seed: int = 0, **bounds: float) -> SearchContext:
    objectives = [create_objective("top1"), create_objective("macs")]
    return SearchContext(SPACE, objectives, build_constraints(**bounds), COSTS, seed=seed)


def evaluated(archs, iteration, archive):
    """Synthetic evaluations: accuracy grows with MACs, as on a real landscape."""
    results = []
    for arch in archs:
        costs = COSTS(arch).as_dict()
        results.append(
            EvalResult(
                arch,
                "ok",
                top1=50 + 40 * np.tanh(costs["macs"] * 4),
                **{k: costs[k] for k in ("params", "macs", "activations")},
            )
        )
    archive.add(results, iteration)


def run(name: str, seed: int = 0, iterations: int = 2, **kwargs) -> Archive:
    ctx = context(seed)
    algorithm = create_algorithm(name, ctx, n_iter=3, predictor="carts", pop_size=8, n_gen=3, **kwargs)
    archive = Archive(SPACE)
    evaluated(algorithm.initial(6), 0, archive)
    for k in range(1, iterations + 1):
        archs, info = algorithm.ask(archive, k)
        assert isinstance(info, dict)
        evaluated(archs, k, archive)
    return archive


@pytest.mark.parametrize("name", ALGORITHMS.names(aliases=False))
def test_initial_design_holds_the_extremes_and_distinct_architectures(name):
    design = create_algorithm(name, context(), n_iter=3).initial(6)
    assert design[:2] == [SPACE.smallest(), SPACE.largest()] and len(design) == 6
    assert len({tuple(SPACE.encode(a)) for a in design}) == 6


@pytest.mark.parametrize("name", ALGORITHMS.names(aliases=False))
def test_asks_for_new_valid_architectures_reproducibly(name):
    entry = ALGORITHMS.entry(name)
    assert entry.factory.name == name and entry.help
    archive = run(name)
    keys = [tuple(SPACE.encode(e.arch)) for e in archive.entries]
    assert len(keys) == len(set(keys)) == 6 + 2 * 3
    assert all(SPACE.validate(e.arch) == e.arch for e in archive.entries)
    again = run(name)
    assert [e.arch for e in again.entries] == [e.arch for e in archive.entries]
    assert [e.arch for e in run(name, seed=1).entries] != [e.arch for e in archive.entries]


@pytest.mark.parametrize("name", [e.name for e in ALGORITHMS.entries() if issubclass(e.factory, EvolutionaryAlgorithm)])
def test_nsga2_operators_are_constructor_arguments(name):
    class CountingCrossover(UniformCrossover):
        calls = 0

        def _do(self, problem, genomes, **kwargs):
            CountingCrossover.calls += 1
            return super()._do(problem, genomes, **kwargs)

    mutation = PM(prob=0.5, eta=20, vtype=float)
    algorithm = create_algorithm(
        name, context(), n_iter=3, pop_size=8, crossover=CountingCrossover(), mutation=mutation
    )
    assert algorithm.mutation is mutation and algorithm.nsga2(pop_size=8).mating.crossover is algorithm.crossover
    run(name, iterations=1, crossover=CountingCrossover(), mutation=mutation)
    assert CountingCrossover.calls > 0


def test_nsga2_survival_on_tied_objectives_is_fixed_by_the_seed():
    algorithm = create_algorithm("nsga2", context(), n_iter=3, pop_size=5)
    archive = Archive(SPACE)
    archive.add([EvalResult(a, "ok", 80.0, 1.0, 2.0, 0.5) for a in SPACE.sample(20, np.random.default_rng(0))], 0)
    problem = SurrogateProblem(algorithm.ctx, predictor=None)

    def survivors(seed):
        chosen = algorithm.survivors(problem, archive, np.random.default_rng(seed))
        return tuple(sorted(map(tuple, chosen.get("X").tolist())))

    assert len({survivors(1) for _ in range(20)}) == 1
    assert len({survivors(seed) for seed in range(20)}) > 1  # the tie is broken at random, by the seed
    proposals = {tuple(map(str, algorithm.ask(archive, 1)[0])) for _ in range(20)}
    assert len(proposals) == 1


def test_msunas_predicts_a_measured_second_objective_and_records_its_surrogate():
    objectives = [create_objective("top1"), create_objective("avg_macs")]
    ctx = SearchContext(SPACE, objectives, build_constraints(objectives, mmax=0.05), COSTS, seed=0)
    algorithm = create_algorithm("msunas", ctx, n_iter=3, predictor="carts", sec_predictor="gp", pop_size=8, n_gen=3)
    archive = Archive(SPACE)
    design = algorithm.initial(12)
    evaluated(design, 0, archive)
    for entry in archive.entries:  # half the inputs leave at an exit costing a fifth of the backbone
        entry.stats["avg_macs"] = 0.6 * entry.stats["macs"]
    archs, info = algorithm.ask(archive, 1)
    surrogate = info["surrogate"]
    assert len(archs) == 3 and surrogate["winner"] == "carts"
    assert surrogate["avg_macs"]["name"] == "gp" and len(surrogate["avg_macs"]["predicted"]) == 3
    assert {"tau", "rmse", "rho"} <= set(surrogate["avg_macs"]) and 0.0 <= surrogate["phi"] <= 1.0
