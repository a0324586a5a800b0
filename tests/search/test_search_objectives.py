from __future__ import annotations

import math

import numpy as np
import pytest

from evaluator.base import EvalResult
from hw.metrics import CostMetrics
from search.objectives import (
    Constraint,
    Objective,
    build_constraints,
    constraint_matrix,
    create_objective,
    feasible,
    fit_objectives,
    list_objectives,
    objective_matrix,
)
from utils.errors import UsageError

ARCH = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}


def record(top1=90.0, params=1.0, macs=80.0, activations=3.0, peak_act=0.5) -> dict[str, float]:
    return {"top1": top1, "params": params, "macs": macs, "activations": activations, "peak_act": peak_act}


def test_registry_holds_the_computable_objectives():
    assert {"top1", "params", "macs", "activations", "peak_act", "latency", "tiny_ml"} <= set(list_objectives())
    assert "avg_macs" in list_objectives()
    assert {"top1_robust", "robustness", "mCE"} <= set(list_objectives())


def test_avg_macs_is_measured_and_takes_over_mmax():
    avg = create_objective("avg_macs")
    assert not avg.cheap and avg.needs == ("avg_macs",) and avg.bound == "mmax"
    assert avg.value({"avg_macs": 12.5}) == 12.5
    mmax, top1min = build_constraints([create_objective("top1"), avg], mmax=10.0, top1min=80.0)
    assert mmax == Constraint("mmax", "avg_macs", 10.0, upper=True, cheap=False)
    assert mmax.violation({"avg_macs": 12.5, "macs": 5.0}) == pytest.approx(2.5)
    assert top1min.key == "top1"
    assert build_constraints([create_objective("macs")], mmax=10.0)[0].key == "macs"


def test_unknown_objective_is_a_usage_error_listing_the_choices():
    with pytest.raises(UsageError, match="unknown objective 'flops'.*macs"):
        create_objective("flops")


def fitted(objective: Objective) -> Objective:
    """`objective`, normalised over two records if it is normalised over an archive (`top1_robust`)."""
    records = [{"top1": 90.0, "robustness": 2.0}, {"top1": 70.0, "robustness": 6.0}]
    return objective if objective.fit is None else objective.fit(records)


def test_top1_robust_weighs_error_and_flatness_with_alpha_norm_fitted_on_the_archive():
    objective = create_objective("top1_robust", alpha=0.25)
    with pytest.raises(ValueError, match="needs alpha_norm"):
        objective.value({"top1": 90.0, "robustness": 2.0})
    fit = fitted(objective)  # mean error 20, mean robustness 4: alpha_norm 5
    assert dict(fit.params) == {"alpha": 0.25, "alpha_norm": 5.0}
    assert fit.value({"top1": 80.0, "robustness": 1.0}) == pytest.approx(0.25 * 20 + 5.0 * 0.75 * 1.0)
    assert fit_objectives([create_objective("macs"), objective], [{"top1": 50.0, "robustness": 0.0}])[1].params == (
        ("alpha", 0.25),
        ("alpha_norm", 1.0),  # a flat archive: no scale to match, 1
    )
    with pytest.raises(UsageError, match=r"--alpha must lie in \[0, 1\]"):
        create_objective("top1_robust", alpha=1.5)
    with pytest.raises(ValueError, match="needs 'robustness'"):
        objective.fit([{"top1": 50.0}])


def test_robustness_and_mce_are_measured_numbers_to_minimise():
    for name in ("robustness", "mCE"):
        objective = create_objective(name)
        assert not objective.cheap and objective.needs == (name,) and objective.value({name: 3.5}) == 3.5


@pytest.mark.parametrize("name", list_objectives())
def test_every_objective_reads_only_what_it_needs(name):
    objective = fitted(create_objective(name))
    assert isinstance(objective, Objective)
    assert objective.name == name
    assert objective.label and objective.needs
    value = objective.value(dict.fromkeys(objective.needs, 1.0))
    assert math.isfinite(value)
    for key in objective.needs:
        partial = {k: 1.0 for k in objective.needs if k != key}
        with pytest.raises(ValueError, match=f"objective {name} needs '{key}'"):
            objective.value(partial)
        with pytest.raises(ValueError, match=f"objective {name} needs '{key}'"):
            objective.value({**partial, key: None})


@pytest.mark.parametrize("name", list_objectives())
def test_cheap_objectives_need_only_cost_metrics(name):
    objective = fitted(create_objective(name))
    costs = CostMetrics(params=1.5, macs=60.0, activations=2.0, peak_act=0.25, latency=0.1).as_dict()
    if objective.cheap:
        assert math.isfinite(objective.value(costs))
    else:
        with pytest.raises(ValueError):
            objective.value(costs)


def test_top1_is_the_error_and_not_cheap():
    top1 = create_objective("top1")
    assert top1.value(record(top1=92.5)) == pytest.approx(7.5)
    assert not top1.cheap
    assert top1.label == "top-1 error (%)"


@pytest.mark.parametrize(
    ("name", "expected", "label"),
    [
        ("params", 1.5, "params (M)"),
        ("macs", 60.0, "MACs (M)"),
        ("activations", 2.0, "activations (M)"),
        ("peak_act", 0.25, "peak activations (M)"),
    ],
)
def test_cost_objectives_read_cost_metrics(name, expected, label):
    objective = create_objective(name)
    costs = CostMetrics(params=1.5, macs=60.0, activations=2.0, peak_act=0.25, latency=0.1)
    assert objective.cheap
    assert objective.label == label
    assert objective.value(costs.as_dict()) == expected


def test_objectives_read_eval_result_stats_with_extras():
    result = EvalResult(ARCH, "ok", top1=88.0, params=1.2, macs=50.0, activations=2.5, extras={"peak_act": 0.3})
    stats = result.stats()
    assert create_objective("top1").value(stats) == pytest.approx(12.0)
    assert create_objective("macs").value(stats) == 50.0
    assert create_objective("peak_act").value(stats) == 0.3


def test_a_failed_evaluation_is_never_turned_into_a_number():
    stats = EvalResult.failure(ARCH, RuntimeError("out of memory")).stats()
    with pytest.raises(ValueError, match="objective top1 needs 'top1'"):
        create_objective("top1").value(stats)


def test_nan_is_missing():
    with pytest.raises(ValueError, match="objective peak_act needs 'peak_act'"):
        create_objective("peak_act").value(record(peak_act=math.nan))


def test_tiny_ml_within_bounds_is_the_weighted_sum():
    tiny = create_objective("tiny_ml")
    assert tiny.cheap
    # wp·P + wm·M + wa·A = 1·1 + 80/40 + 1·3
    assert tiny.value(record(params=1.0, macs=80.0, activations=3.0)) == pytest.approx(6.0)


def test_tiny_ml_penalises_every_exceeded_bound():
    tiny = create_objective("tiny_ml")
    # P exceeds pmax=2 by 0.5, M exceeds mmax=100 by 20, A exceeds amax=5 by 1
    value = tiny.value(record(params=2.5, macs=120.0, activations=6.0))
    expected = (2.5 + 1e10 * 0.5) + (120.0 + 1e10 * 20.0) / 40 + (6.0 + 1e10 * 1.0)
    assert value == pytest.approx(expected, rel=1e-12)
    at_bounds = tiny.value(record(params=2.0, macs=100.0, activations=5.0))
    assert at_bounds == pytest.approx(2.0 + 2.5 + 5.0)


def test_tiny_ml_parameters_and_none_bounds():
    tiny = create_objective("tiny_ml", pmax=None, mmax=10.0, amax=None, wp=2.0, wm=0.5, wa=0.0, penalty=3.0)
    # 2·(4) + 0.5·(20 + 3·10) + 0·(...)
    assert tiny.value(record(params=4.0, macs=20.0, activations=100.0)) == pytest.approx(8.0 + 25.0)
    assert dict(tiny.params) == {
        "pmax": None,
        "mmax": 10.0,
        "amax": None,
        "wp": 2.0,
        "wm": 0.5,
        "wa": 0.0,
        "penalty": 3.0,
    }
    assert create_objective("tiny_ml") == create_objective("tiny_ml")
    assert create_objective("tiny_ml", pmax=1.0) != create_objective("tiny_ml")


@pytest.mark.parametrize("bad", [{"pmax": -1.0}, {"wm": -0.1}, {"penalty": -5.0}, {"amax": math.inf}, {"wp": None}])
def test_tiny_ml_rejects_bad_parameters(bad):
    with pytest.raises(UsageError):
        create_objective("tiny_ml", **bad)


def test_build_constraints_keeps_only_the_given_bounds():
    assert build_constraints() == []
    constraints = build_constraints(pmax=2.0, top1min=80.0)
    assert constraints == [
        Constraint("pmax", "params", 2.0, upper=True, cheap=True),
        Constraint("top1min", "top1", 80.0, upper=False, cheap=False),
    ]
    names = [c.name for c in build_constraints(pmax=1, mmax=2, amax=3, top1min=4)]
    assert names == ["pmax", "mmax", "amax", "top1min"]
    assert [c.key for c in build_constraints(pmax=1, mmax=2, amax=3, top1min=4)] == [
        "params",
        "macs",
        "activations",
        "top1",
    ]


@pytest.mark.parametrize("bad", [{"pmax": -1.0}, {"mmax": -0.001}, {"amax": math.nan}, {"top1min": 101.0}])
def test_build_constraints_rejects_bad_bounds(bad):
    with pytest.raises(UsageError):
        build_constraints(**bad)


def test_violations_are_pymoo_g():
    pmax, mmax, top1min = build_constraints(pmax=2.0, mmax=100.0, top1min=85.0)
    r = record(top1=90.0, params=2.5, macs=60.0)
    assert pmax.violation(r) == pytest.approx(0.5)  # 2.5 − 2
    assert mmax.violation(r) == pytest.approx(-40.0)  # 60 − 100
    assert top1min.violation(r) == pytest.approx(-5.0)  # 85 − 90
    assert top1min.violation(record(top1=80.0)) == pytest.approx(5.0)
    assert pmax.violation(record(params=2.0)) == 0.0
    assert not feasible(r, [pmax, mmax, top1min])
    assert feasible(r, [mmax, top1min])
    assert feasible(record(params=2.0), [pmax])  # on the bound is feasible
    assert feasible(r, [])


def test_constraint_missing_key_is_clear():
    (amax,) = build_constraints(amax=5.0)
    with pytest.raises(ValueError, match="constraint amax needs 'activations'"):
        amax.violation({"params": 1.0})


def test_matrices():
    objectives = [create_objective("top1"), create_objective("macs")]
    constraints = build_constraints(pmax=2.0, mmax=100.0)
    records = [record(top1=90.0, params=1.0, macs=80.0), record(top1=70.0, params=3.0, macs=120.0)]
    f = objective_matrix(records, objectives)
    g = constraint_matrix(records, constraints)
    np.testing.assert_allclose(f, [[10.0, 80.0], [30.0, 120.0]])
    np.testing.assert_allclose(g, [[-1.0, -20.0], [1.0, 20.0]])
    assert f.dtype == np.float64 and g.dtype == np.float64
    assert objective_matrix([], objectives).shape == (0, 2)
    assert constraint_matrix(records, []).shape == (2, 0)
    assert constraint_matrix([], constraints).shape == (0, 2)
