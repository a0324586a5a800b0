import copy
import dataclasses
import itertools
import json
import logging
import math

import numpy as np
import pytest
import torch

from oneshot.hc_loss import to_millions
from oneshot.lut import LookupTable
from oneshot.sampling import SAMPLE_STRATEGIES
from oneshot.scoring import PathScorer
from oneshot.strategies import (
    SEARCH_STRATEGIES,
    ScoredPath,
    SearchOutcome,
    SearchStrategyConfig,
    best_of,
    create_search_strategy,
    list_search_strategies,
    repair_path,
)
from oneshot.training import SupernetTrainConfig, train_supernet
from training.config import OptimConfig
from utils.errors import UsageError

RES = 16
SMALL = SearchStrategyConfig(
    random_iteration=5, generation_num=3, population=6, parent_num=2, search_steps=3, batch_size=8
)


def fake_top1(path) -> float:
    """A deterministic stand-in for validation top-1 that varies from path to path."""
    return float((sum((i + 3) * (c + 1) ** 2 for i, c in enumerate(path)) * 7919) % 1000) / 10


def median_cost(lut: LookupTable, n_choices, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    return int(np.median([lut.cost([int(rng.integers(n)) for n in n_choices]) for _ in range(200)]))


def search(name, supernet, lut, splits, scorer=fake_top1, **changes):
    cfg = dataclasses.replace(SMALL, **changes)
    return create_search_strategy(name, cfg).search(supernet, lut, scorer, splits, RES, "cpu", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"random_iteration": 0}, "--random-iteration must be >= 1"),
        ({"generation_num": 0}, "--generation-num must be >= 1"),
        ({"parent_num": 1}, "--parent-num must be >= 2"),
        ({"population": 9}, "--population must be >= --parent-num"),
        ({"mutation_prob": 1.5}, "--mutation-prob must lie in [0, 1]"),
        ({"hc_weight": -0.1}, "--hc-weight must be >= 0"),
        ({"target": -5}, "--target-hc must be > 0"),
        ({"hc_metric": "activations"}, "--hc-metric must be one of"),
        ({"search_steps": 0}, "--search-steps must be >= 1"),
        ({"sample_attempts": 0}, "--sample-attempts must be >= 1"),
    ],
)
def test_validate_names_the_flag(change, message):
    cfg = dataclasses.replace(SearchStrategyConfig(parent_num=10), **change)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_search_strategy("evolution", cfg)


def test_defaults_are_upstreams_with_spos_half_mutation_half_crossover():
    cfg = SearchStrategyConfig().validate()
    assert (cfg.random_iteration, cfg.generation_num, cfg.population, cfg.parent_num) == (1000, 20, 60, 10)
    assert (cfg.mutation_num, cfg.crossover_num, cfg.mutation_prob) == (25, 25, 0.1)
    assert (cfg.arch.a_optimizer, cfg.arch.a_lr, cfg.hc_weight) == ("sgd", 0.05, 0.005)
    odd = SearchStrategyConfig(population=61)
    assert (odd.mutation_num, odd.crossover_num) == (25, 26)


def test_the_registry_lists_upstreams_three_strategies():
    assert list_search_strategies() == ["differentiable", "evolution", "random_search"]
    with pytest.raises(UsageError, match="unknown search strategy 'rl'"):
        create_search_strategy("rl")


@pytest.fixture(scope="module")
def trained(os_spec, os_lut, os_digits, os_make_supernet):
    """A supernet of `os_spec` trained a few steps by each sample strategy."""
    nets = {}
    for strategy in SAMPLE_STRATEGIES.names():
        net = os_make_supernet(os_spec)
        cfg = SupernetTrainConfig(
            sample_strategy=strategy, steps_per_epoch=3, optim=OptimConfig(lr=0.1, batch_size=8), target=None
        )
        train_supernet(net, os_digits, RES, cfg, os_lut, "cpu", progress=False)
        nets[strategy] = net
    return nets


@pytest.mark.parametrize("search_name", SEARCH_STRATEGIES.names())
@pytest.mark.parametrize("sample_name", SAMPLE_STRATEGIES.names())
def test_every_training_strategy_with_every_search_strategy(sample_name, search_name, trained, os_lut, os_digits):
    net = copy.deepcopy(trained[sample_name])
    target = median_cost(os_lut, net.spec.n_choices)
    scorer = PathScorer(net, os_digits, RES, n_bn_cal=16, batch_size=16, valid_limit=32, seed=0)
    outcome = search(search_name, net, os_lut, os_digits, scorer=scorer, target=target)
    assert isinstance(outcome, SearchOutcome) and outcome.strategy == search_name
    assert outcome.history and outcome.seconds > 0
    assert outcome.best_cost == os_lut.cost(outcome.best_path) <= target
    assert outcome.best_top1 == scorer(outcome.best_path) == max(s.top1 for s in outcome.history)
    assert all(s.cost == os_lut.cost(s.path) <= target for s in outcome.history)
    assert all(s.top1 == scorer.cache[tuple(s.path)] for s in outcome.history)
    json.dumps(outcome.to_dict())


def test_a_target_below_the_smallest_path_is_a_usage_error(os_supernet, os_lut, os_train_only):
    _, smallest = os_lut.smallest("macs")
    for name in SEARCH_STRATEGIES.names():
        with pytest.raises(UsageError, match=rf"smallest path's macs: {to_millions(smallest):.4f} M"):
            search(name, os_supernet, os_lut, os_train_only, target=smallest - 1)
    _, smallest_params = os_lut.smallest("params")
    with pytest.raises(UsageError, match=rf"params: {to_millions(smallest_params):.4f} M"):
        search("random_search", os_supernet, os_lut, os_train_only, target=smallest_params - 1, hc_metric="params")


def test_random_search_scores_distinct_paths_within_the_target(os_supernet, os_lut, os_train_only):
    target = median_cost(os_lut, os_supernet.spec.n_choices)
    outcome = search("random_search", os_supernet, os_lut, os_train_only, random_iteration=40, target=target)
    paths = [tuple(s.path) for s in outcome.history]
    assert len(paths) == len(set(paths)) == 40
    assert all(s.cost <= target for s in outcome.history)
    assert outcome.best_top1 == max(fake_top1(p) for p in paths)


def test_random_search_says_when_the_target_excludes_nearly_everything(os_supernet, os_lut, os_train_only, caplog):
    path, smallest = os_lut.smallest()
    with caplog.at_level(logging.WARNING, logger="oneshot.strategies"):
        outcome = search(
            "random_search", os_supernet, os_lut, os_train_only, random_iteration=20, target=smallest, sample_attempts=3
        )
    assert "excludes nearly every path" in caplog.text
    assert all(s.cost <= smallest for s in outcome.history)
    assert outcome.best_cost == smallest


@pytest.mark.parametrize("name", ["random_search", "evolution"])
def test_same_seed_same_outcome(name, os_supernet, os_lut, os_train_only):
    target = median_cost(os_lut, os_supernet.spec.n_choices)
    runs = [search(name, os_supernet, os_lut, os_train_only, target=target, seed=s) for s in (4, 4, 5)]
    same, again, other = (dataclasses.replace(r, seconds=0.0) for r in runs)
    assert same == again
    assert [s.path for s in same.history] != [s.path for s in other.history]


def test_evolution_never_leaves_the_target_and_keeps_its_parents(os_supernet, os_lut, os_train_only):
    target = median_cost(os_lut, os_supernet.spec.n_choices)
    cfg = {"generation_num": 5, "population": 10, "parent_num": 3, "mutation_prob": 0.3, "target": target}
    outcome = search("evolution", os_supernet, os_lut, os_train_only, **cfg)
    assert outcome.best_cost <= target
    assert all(s.cost <= target for s in outcome.history)
    paths = [tuple(s.path) for s in outcome.history]
    assert len(paths) == len(set(paths))  # never scored twice
    generations = [s.generation for s in outcome.history]
    assert generations == sorted(generations) and set(generations) == set(range(5))
    assert generations.count(0) == 10 and all(generations.count(g) <= 7 for g in range(1, 5))
    best = [t["best_top1"] for t in outcome.trace]
    assert best == sorted(best)  # elitist: the parents survive
    assert outcome.best_top1 == max(s.top1 for s in outcome.history)


def test_differentiable_search_lowers_the_expected_cost_to_a_tight_target(os_supernet, os_lut, os_train_only, os_state):
    before = os_state(os_supernet)
    _, smallest = os_lut.smallest()
    target = int(smallest * 1.02)
    outcome = search(
        "differentiable", os_supernet, os_lut, os_train_only, search_steps=6, hc_weight=50.0, target=target
    )
    costs = [t["expected_cost"] for t in outcome.trace]
    assert len(costs) == 6 and costs[-1] < costs[0]
    assert all(b <= a for a, b in itertools.pairwise(costs))
    assert outcome.trace[0]["tau"] == 5.0 and math.isclose(outcome.trace[-1]["tau"], 0.5)
    assert outcome.best_cost <= target and len(outcome.history) == 1
    assert outcome.extras["argmax_cost"] == os_lut.cost(outcome.extras["argmax_path"])
    after = os_state(os_supernet)  # only the architecture parameters changed: weights frozen, buffers restored
    assert {k for k in before if not torch.equal(before[k], after[k])} == {
        f"alpha.{i}" for i in range(os_supernet.spec.n_layers)
    }


def test_differentiable_search_is_seeded(os_spec, os_lut, os_train_only, os_make_supernet):
    target = median_cost(os_lut, os_spec.n_choices)
    outcomes = [
        search("differentiable", os_make_supernet(os_spec), os_lut, os_train_only, target=target, seed=2)
        for _ in range(2)
    ]
    a, b = (dataclasses.replace(o, seconds=0.0) for o in outcomes)
    assert a == b


def table_lut(rows: list[list[int]]) -> LookupTable:
    return LookupTable(resolution=8, fixed={"macs": 100}, table={"macs": rows})


def test_repair_switches_the_layer_losing_least_log_probability_per_cost_saved():
    lut = table_lut([[50, 10], [40, 20, 5]])
    log_probs = [np.log([0.6, 0.4]), np.log([0.5, 0.45, 0.05])]
    # from [0, 0] (190): layer 0 → 1 loses 0.405 for 40 (0.0101 / unit); layer 1 → 1 loses 0.105 for 20 (0.0053)
    assert repair_path([0, 0], log_probs, lut, target=170) == [0, 1]
    # 170 → 150 more: then layer 0 → 1 (0.0101 / unit) beats layer 1 → 2 (2.30 for 15)
    assert repair_path([0, 0], log_probs, lut, target=150) == [1, 1]
    assert repair_path([0, 0], log_probs, lut, target=190) == [0, 0]
    assert repair_path([0, 0], log_probs, lut, target=115) == [1, 2]


def test_best_of_prefers_top1_then_lower_cost_then_first():
    history = [ScoredPath([0], 50.0, 10), ScoredPath([1], 60.0, 30), ScoredPath([2], 60.0, 20), ScoredPath([3], 60, 20)]
    assert best_of(history).path == [2]
