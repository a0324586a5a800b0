import math

import numpy as np
import pytest

from oneshot.sampling import (
    SAMPLE_STRATEGIES,
    FairStrictSampling,
    SampleStrategy,
    TrainStep,
    candidate_counts,
    create_sample_strategy,
    list_sample_strategies,
)
from oneshot.spaces import create_oneshot_spec
from utils.errors import UsageError


@pytest.mark.parametrize("name", SAMPLE_STRATEGIES.names())
def test_every_strategy_yields_valid_steps(name):
    n_choices = (4, 6, 7, 2)
    strategy = create_sample_strategy(name, n_choices, seed=1)
    assert isinstance(strategy, SampleStrategy)
    assert strategy.name == name
    for step, _ in zip(strategy, range(5), strict=False):
        assert isinstance(step, TrainStep)
        assert step.mixture == (not step.paths)
        assert step.arch_update == strategy.trains_architecture
        for path in step.paths:
            assert len(path) == len(n_choices)
            assert all(0 <= c < n for c, n in zip(path, n_choices, strict=True))
            assert all(isinstance(c, int) for c in path)


def test_the_registry_lists_upstreams_three_strategies():
    assert list_sample_strategies() == ["differentiable", "fairstrict", "uniform"]
    with pytest.raises(UsageError, match="unknown sample strategy 'sandwich'.*uniform"):
        create_sample_strategy("sandwich", (3, 3))


@pytest.mark.parametrize("name", ["uniform", "fairstrict"])
def test_same_seed_same_steps(name):
    a = create_sample_strategy(name, (4, 5, 3), seed=7)
    b = create_sample_strategy(name, (4, 5, 3), seed=np.random.default_rng(7))
    c = create_sample_strategy(name, (4, 5, 3), seed=8)
    steps_a = [a.next_step() for _ in range(6)]
    assert steps_a == [b.next_step() for _ in range(6)]
    assert steps_a != [c.next_step() for _ in range(6)]


def test_uniform_trains_one_path_per_step_spread_evenly():
    strategy = create_sample_strategy("uniform", (4, 7), seed=0)
    steps = [strategy.next_step() for _ in range(7000)]
    assert all(len(s.paths) == 1 for s in steps)
    counts = candidate_counts([s.paths[0] for s in steps], (4, 7))
    for row in counts:
        assert sum(row) == 7000
        assert max(row) / min(row) < 1.15


@pytest.mark.parametrize(
    "n_choices",
    [
        (4, 4, 4, 4),  # SPOS
        (9,) * 22,  # FBNet
        (3,),
    ],
)
def test_fairstrict_with_equal_counts_trains_every_candidate_exactly_once_per_group(n_choices):
    strategy = create_sample_strategy("fairstrict", n_choices, seed=2)
    for _ in range(3):
        step = strategy.next_step()
        assert len(step.paths) == n_choices[0]
        assert candidate_counts(step.paths, n_choices) == [[1] * n for n in n_choices]


@pytest.mark.parametrize(
    "n_choices",
    [
        create_oneshot_spec("proxyless").n_choices,  # 6 in the first layer of a stage, 7 (with skip) elsewhere
        create_oneshot_spec("singlepath").n_choices,  # 4 and 5
        (2, 3, 4),
        (1, 5, 6),
    ],
)
def test_fairstrict_with_unequal_counts_trains_every_candidate_g_over_n_times_per_group(n_choices):
    strategy = create_sample_strategy("fairstrict", n_choices, seed=3)
    assert isinstance(strategy, FairStrictSampling)
    g = math.lcm(*n_choices)
    assert strategy.group_size == g
    assert len(set(n_choices)) > 1
    total = [[0] * n for n in n_choices]
    for groups in range(1, 4):
        step = strategy.next_step()
        assert len(step.paths) == g
        counts = candidate_counts(step.paths, n_choices)
        assert counts == [[g // n] * n for n in n_choices]
        total = [[t + c for t, c in zip(tr, cr, strict=True)] for tr, cr in zip(total, counts, strict=True)]
        assert total == [[groups * g // n] * n for n in n_choices]


def test_fairstrict_schedules_are_concatenated_permutations():
    n_choices = (2, 3, 4)
    strategy = create_sample_strategy("fairstrict", n_choices, seed=4)
    paths = strategy.next_step().paths
    for layer, n in enumerate(n_choices):
        column = [p[layer] for p in paths]
        blocks = [column[i : i + n] for i in range(0, len(column), n)]
        assert all(sorted(block) == list(range(n)) for block in blocks)
    assert len({paths for paths in (strategy.next_step().paths for _ in range(5))}) > 1  # reshuffled per group


def test_differentiable_trains_the_mixture_then_the_architecture():
    step = create_sample_strategy("differentiable", (3, 3)).next_step()
    assert step == TrainStep(paths=(), arch_update=True)
    assert step.mixture


def test_candidate_counts():
    assert candidate_counts([(0, 1), (0, 2), (1, 2)], (2, 3)) == [[2, 1], [0, 1, 2]]
    with pytest.raises(ValueError, match="at least one candidate"):
        create_sample_strategy("uniform", (3, 0))


def test_paths_per_step_is_the_group_size_for_fairstrict_and_one_otherwise():
    counts = (6, 7, 7)
    assert create_sample_strategy("fairstrict", counts).paths_per_step == 42
    assert create_sample_strategy("uniform", counts).paths_per_step == 1
    assert create_sample_strategy("differentiable", counts).paths_per_step == 1
