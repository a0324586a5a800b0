"""The parts of the search engine that set its direction: repair, integer mutation, the surrogate problem."""

import numpy as np
import pytest
from pymoo.core.problem import Problem

from search.algorithms import CanonicalRepair, IntegerPolynomialMutation, SearchContext, SurrogateProblem
from search.objectives import build_constraints, create_objective
from search.surrogate import SurrogateFeatures
from search_space.ofa_mbv3 import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(lr=24, ur=32, rstep=4)
COSTS = SPACE.cost_function(10)


def test_repair_rounds_clips_and_canonicalises():
    rng = np.random.default_rng(0)
    raw = rng.uniform(SPACE.xl - 1.4, SPACE.xu + 1.4, size=(200, SPACE.n_var))
    repaired = CanonicalRepair(SPACE)._do(None, raw)
    expected = [SPACE.encode(SPACE.decode(np.clip(np.round(x), SPACE.xl, SPACE.xu).astype(int))) for x in raw]
    np.testing.assert_array_equal(repaired, expected)
    assert repaired.dtype == np.int64


def mutated(start: float, xl: float, xu: float, n: int = 20000) -> np.ndarray:
    """Rounded results of mutating `n` copies of a one-gene genome at `start`."""
    problem = Problem(n_var=2, xl=np.array([xl, 5.0]), xu=np.array([xu, 5.0]), vtype=int)
    mutation = IntegerPolynomialMutation(prob=1.0, prob_var=1.0, eta=1.0)
    x = np.tile([start, 5.0], (n, 1))
    out = mutation._do(problem, x, random_state=np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, 1], 5.0)  # a gene with one value never moves
    return np.clip(np.round(out[:, 0]), xl, xu)


def test_integer_mutation_gives_the_end_values_their_full_step():
    middle = mutated(1.0, 0.0, 2.0)
    assert np.mean(middle != 1.0) > 0.55  # polynomial mutation on [xl, xu] changes it 42 % of the time
    low = mutated(0.0, 0.0, 2.0)
    assert np.mean(low == 2.0) > 0.09  # extreme to extreme: 3 % on [xl, xu]
    assert set(np.unique(low)) == {0.0, 1.0, 2.0}


class LinearError:
    """A stand-in predictor: error = 10 + 5 * (first feature); records what it was asked."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 10.0 + 5.0 * x[:, 0]


def test_the_surrogate_problem_minimises_predicted_error_beside_exact_costs():
    ctx = SearchContext(SPACE, [create_objective("top1"), create_objective("macs")], [], COSTS)
    features = SurrogateFeatures(SPACE, COSTS)
    problem = SurrogateProblem(ctx, LinearError(), features)
    genomes = np.array([SPACE.encode(a) for a in SPACE.sample(20, np.random.default_rng(1))])
    out: dict = {}
    problem._evaluate(genomes, out)
    predicted = LinearError().predict(features(genomes))
    np.testing.assert_allclose(out["F"][:, 0], predicted)  # the first objective is the predicted *error*
    np.testing.assert_allclose(out["F"][:, 1], [COSTS(SPACE.decode(g)).macs for g in genomes])
    records = problem.records(genomes)
    np.testing.assert_allclose([r["top1"] for r in records], 100.0 - predicted)
    with pytest.raises(ValueError, match="features"):
        SurrogateProblem(ctx, LinearError())


class MacsFraction:
    """A stand-in predictor of `avg_macs`: a fixed fraction of the log-MACs feature plus one."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 1.0 + 10.0 * x[:, -2]


def test_a_measured_second_objective_is_predicted_and_its_bound_folds_in_with_phi():
    objectives = [create_objective("top1"), create_objective("avg_macs")]
    constraints = build_constraints(objectives, mmax=6.0, pmax=100.0)
    ctx = SearchContext(SPACE, objectives, constraints, COSTS)
    assert ctx.predicted_keys == ("avg_macs",)
    assert [c.name for c in ctx.blended()] == ["mmax"]
    features = SurrogateFeatures(SPACE, COSTS)
    problem = SurrogateProblem(ctx, LinearError(), features, {"avg_macs": MacsFraction()})
    assert problem.n_ieq_constr == 1  # pmax stays a constraint; mmax on a predicted key does not
    genomes = np.array([SPACE.encode(a) for a in SPACE.sample(40, np.random.default_rng(2))])
    predicted = MacsFraction().predict(features(genomes))
    assert 0 < np.mean(predicted <= 6.0) < 1
    out: dict = {}
    problem._evaluate(genomes, out)
    phi = np.mean(predicted <= 6.0)
    assert problem.phi == pytest.approx(phi)
    np.testing.assert_allclose(out["F"][:, 1], phi * predicted + (1 - phi) * np.maximum(predicted - 6.0, 0.0))
    np.testing.assert_allclose(out["G"][:, 0], [COSTS(SPACE.decode(g)).params - 100.0 for g in genomes])
    np.testing.assert_allclose([r["avg_macs"] for r in problem.records(genomes)], predicted)  # records stay raw
