"""Objectives, constraints and the command line keep the extension contract: every registry entry reaches the CLI."""

import dataclasses
import math

import pytest

import msunas
from acc_predictor import PREDICTORS
from data import DATASETS
from evaluator import BACKENDS, EVALUATORS
from hw.metrics import CostMetrics
from search.algorithms import ALGORITHMS
from search.config import SearchConfig, help_texts
from search.objectives import CONSTRAINTS, OBJECTIVES, objective_parameters
from search_space import SEARCH_SPACES
from utils.cli import run_cli

FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}
COSTS = CostMetrics(params=1.5, macs=20.0, activations=0.5, peak_act=0.1, latency=0.3).as_dict()


@pytest.mark.parametrize("name", OBJECTIVES.names(aliases=False))
def test_every_objective_is_configurable_and_finite(name):
    objective = SearchConfig(sec_obj=name).objective(name)
    unflagged = set(objective_parameters(name)) - FIELDS
    assert not unflagged or objective.fit is not None, "a parameter is a search flag or fitted to the archive"
    assert objective.name == name and objective.label and OBJECTIVES.entry(name).help
    measured = {key: 90.0 for key in objective.needs if key not in COSTS}
    if objective.fit is not None:
        objective = objective.fit([{**COSTS, **measured}])
    assert math.isfinite(objective.value({**COSTS, **measured}))
    if objective.cheap:
        assert not measured, "a cheap objective is computable from the cost function alone"
    evaluators = [EVALUATORS.get(e.name) for e in EVALUATORS.entries()]
    by = {key for e in evaluators for key in (*e.measures, *e.switches)}
    assert set(measured) <= by, "a number no cost function computes is measured by some evaluator (maybe on a flag)"


@pytest.mark.parametrize("name", CONSTRAINTS.names(aliases=False))
def test_every_constraint_is_a_flag_and_bounds_its_key(name):
    assert name in FIELDS
    meta = CONSTRAINTS.meta(name)
    (constraint,) = SearchConfig(**{name: 10.0}).constraints()
    assert (constraint.name, constraint.key, constraint.upper) == (name, meta["key"], meta["upper"])
    inside, outside = (5.0, 15.0) if constraint.upper else (15.0, 5.0)
    assert constraint.violation({meta["key"]: inside}) < 0 < constraint.violation({meta["key"]: outside})


REGISTRIES = {
    "algorithm": ALGORITHMS,
    "predictor": PREDICTORS,
    "dataset": DATASETS,
    "search_space": SEARCH_SPACES,
    "evaluator": EVALUATORS,
    "backend": BACKENDS,
    "sec_obj": OBJECTIVES,
}


@pytest.mark.parametrize("flag", sorted(REGISTRIES))
def test_help_lists_every_registered_choice(flag, capsys):
    texts = help_texts()
    names = [e.name for e in REGISTRIES[flag].entries() if e.name != "top1"]
    assert all(name in texts[flag] for name in names)
    with pytest.raises(SystemExit) as exit_info:
        msunas.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert all(name in out for name in names)


def test_an_unknown_evaluator_is_one_line_and_exit_2(tmp_path, capsys):
    assert run_cli(msunas.main, ["--evaluator", "bogus", "--save", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: unknown evaluator 'bogus'; choose one of: darts, ee, supernet") and err.count("\n") == 1
    )
    assert not (tmp_path / "run").exists()
