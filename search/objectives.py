"""Objectives and constraints of the search, declared as data (Archai-style).

Every objective is *minimised*. An `Objective` reads the numbers it needs from a flat record: the merged
`EvalResult.stats()` of an evaluation (`top1`, `params`, `macs`, `activations`, `peak_act`, plus method extras)
or, for a *cheap* objective, the `CostMetrics.as_dict()` of an architecture, which needs no training. Costs are
in millions, `top1` in percent.

Constraints are real pymoo constraints: `Constraint.violation(stats) <= 0` means satisfied, so a matrix of
violations is the `G` of a pymoo problem. The violation is in the unit of its key (millions, or percent for
`top1min`), not normalised. Upstream CNAS's static penalty stays available as the `tiny_ml` objective.

`create_objective(name, **params)` is the one way to build an objective; `list_objectives()` names them all.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from search.pareto import non_dominated
from utils.errors import UsageError
from utils.registry import Registry

__all__ = [
    "OBJECTIVES",
    "Constraint",
    "Objective",
    "build_constraints",
    "constraint_matrix",
    "create_objective",
    "feasible",
    "feasible_front",
    "fit_objectives",
    "list_objectives",
    "measured_keys",
    "objective_matrix",
    "register_objective",
]


def _read(stats: Mapping[str, object], key: str, what: str) -> float:
    """`stats[key]` as a float; a missing, None or NaN entry is a `ValueError` naming `what` and `key`."""
    value = stats.get(key)
    if value is None:
        raise ValueError(f"{what} needs '{key}'")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise ValueError(f"{what} needs '{key}' (got nan)")
    return number


@dataclass(frozen=True)
class Objective:
    """A named quantity to minimise, computed from an evaluation record.

    `needs` lists the record keys `fn` reads: `value` checks them first, so a missing one is a clear
    `ValueError` rather than a `KeyError` from inside `fn`. `cheap` objectives need only cost metrics (no
    training). `bound` names the constraint flag that bounds this objective's own key when it is searched
    (`avg_macs` takes `--mmax` over from the backbone's `macs`). `params` records the factory's parameters (for
    configs and equality), `fn` does not take part in equality.
    """

    name: str
    label: str
    cheap: bool
    needs: tuple[str, ...]
    fn: Callable[[Mapping[str, float]], float] = field(compare=False, repr=False)
    params: tuple[tuple[str, float | None], ...] = ()
    bound: str | None = None
    fit: Callable[[Sequence[Mapping[str, object]]], Objective] | None = field(default=None, compare=False, repr=False)
    """For an objective normalised over the archive (`top1_robust`): the objective fitted to a list of records."""

    def value(self, stats: Mapping[str, object]) -> float:
        """The objective's value (to minimise) for one record."""
        numbers = {key: _read(stats, key, f"objective {self.name}") for key in self.needs}
        return float(self.fn(numbers))


OBJECTIVES: Registry[Objective] = Registry("objective")
register_objective = OBJECTIVES.register


def create_objective(name: str, **params: object) -> Objective:
    """Build the objective registered under `name`; an unknown name is a `UsageError` listing the choices."""
    return OBJECTIVES.create(name, **params)


def list_objectives() -> list[str]:
    """Names of every registered objective."""
    return OBJECTIVES.names()


def objective_parameters(name: str) -> tuple[str, ...]:
    """The parameter names of objective `name`'s factory (a search passes its settings of the same names)."""
    return tuple(inspect.signature(OBJECTIVES.get(name)).parameters)


@register_objective("top1")
def _top1() -> Objective:
    """Top-1 error in percent, `100 − top1`; needs a trained (or weight-inherited) evaluation."""
    return Objective("top1", "top-1 error (%)", cheap=False, needs=("top1",), fn=lambda s: 100.0 - s["top1"])


def _cost(key: str, label: str) -> Callable[[], Objective]:
    def factory() -> Objective:
        return Objective(key, label, cheap=True, needs=(key,), fn=lambda s: s[key])

    factory.__doc__ = f"`{key}` in millions, computable from the architecture alone."
    return factory


for _key, _label in (
    ("params", "params (M)"),
    ("macs", "MACs (M)"),
    ("activations", "activations (M)"),
    ("peak_act", "peak activations (M)"),
    ("latency", "systolic-array latency (M cycles)"),
):
    register_objective(_key)(_cost(_key, _label))


@register_objective("avg_macs")
def _avg_macs() -> Objective:
    """Early-exit networks' MACs per input (millions), averaged over where the validation images leave.

    Only an evaluation measures it (the exits taken depend on the trained heads), so a search predicts it with a
    second surrogate; `--mmax` bounds it instead of the backbone's MACs.
    """
    return Objective(
        "avg_macs",
        "average MACs per input (M)",
        cheap=False,
        needs=("avg_macs",),
        fn=lambda s: s["avg_macs"],
        bound="mmax",
    )


@register_objective("robustness")
def _robustness() -> Objective:
    """FlatNAS's flatness: the mean top-1 change (points) under multiplicative weight noise; lower is flatter.

    Measured by evaluations with `--eval_robust` (`robustness.flatness`).
    """
    return Objective("robustness", "robustness (top-1 change, points)", cheap=False, needs=("robustness",), fn=_key)


@register_objective("mCE")
def _mce() -> Objective:
    """Mean top-1 error (%) over corrupted images (15 corruptions x 5 severities), measured with `--ood_eval`."""
    return Objective("mCE", "mCE (%)", cheap=False, needs=("mCE",), fn=_key)


def _key(stats: Mapping[str, float]) -> float:
    """The one number an objective named after its record key reads."""
    (value,) = stats.values()
    return value


@register_objective("top1_robust")
def _top1_robust(alpha: float = 0.5, alpha_norm: float | None = None) -> Objective:
    """FlatNAS's figure of merit `alpha * top1_err + alpha_norm * (1 - alpha) * robustness` (to minimise).

    `alpha_norm = mean(top1_err) / mean(robustness)` over the archive puts both terms on one scale; a search
    refits it every iteration (`fit`, on the networks evaluated before it) and records the value it used. Until
    fitted (`alpha_norm` None) the objective has no value. A mean robustness of 0 gives `alpha_norm` 1.
    """
    if isinstance(alpha, bool) or not 0 <= alpha <= 1:
        raise UsageError(f"--alpha must lie in [0, 1], got {alpha!r}")

    def fn(s: Mapping[str, float]) -> float:
        if alpha_norm is None:
            raise ValueError("top1_robust needs alpha_norm, fitted on an archive")
        return alpha * (100.0 - s["top1"]) + alpha_norm * (1 - alpha) * s["robustness"]

    def fit(records: Sequence[Mapping[str, object]]) -> Objective:
        if not records:
            raise ValueError("top1_robust is normalised over evaluated networks: none given")
        err = np.mean([100.0 - _read(r, "top1", "top1_robust") for r in records])
        rob = np.mean([_read(r, "robustness", "top1_robust") for r in records])
        return _top1_robust(alpha, float(err / rob) if rob > 0 else 1.0)

    return Objective(
        "top1_robust",
        "top1_robust (FlatNAS)",
        cheap=False,
        needs=("top1", "robustness"),
        fn=fn,
        params=(("alpha", alpha), ("alpha_norm", alpha_norm)),
        fit=fit,
    )


def fit_objectives(objectives: Sequence[Objective], records: Sequence[Mapping[str, object]]) -> list[Objective]:
    """`objectives` with those normalised over the archive (`fit`) fitted to `records`, the others as they are."""
    return [o if o.fit is None else o.fit(records) for o in objectives]


def _non_negative(name: str, value: float | None, optional: bool) -> float | None:
    if value is None:
        if optional:
            return None
        raise UsageError(f"{name} must be a number, got None")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


@register_objective("tiny_ml")
def _tiny_ml(
    pmax: float | None = 2.0,
    mmax: float | None = 100.0,
    amax: float | None = 5.0,
    wp: float = 1.0,
    wm: float = 1.0 / 40.0,
    wa: float = 1.0,
    penalty: float = 1e10,
) -> Objective:
    """CNAS's TinyML figure of merit with a static penalty on exceeded bounds (upstream defaults).

    `wp·(P + penalty·max(0, P−pmax)) + wm·(M + penalty·max(0, M−mmax)) + wa·(A + penalty·max(0, A−amax))` with
    P, M, A = params, macs, activations in millions; a bound of None drops its penalty term. Negative bounds,
    weights or penalty are a `UsageError`.
    """
    bounds = {k: _non_negative(k, v, optional=True) for k, v in (("pmax", pmax), ("mmax", mmax), ("amax", amax))}
    weights = {k: _non_negative(k, v, optional=False) for k, v in (("wp", wp), ("wm", wm), ("wa", wa))}
    pen = _non_negative("penalty", penalty, optional=False)
    terms = (("params", "pmax", "wp"), ("macs", "mmax", "wm"), ("activations", "amax", "wa"))

    def fn(s: Mapping[str, float]) -> float:
        total = 0.0
        for key, bound_name, weight_name in terms:
            value, bound = s[key], bounds[bound_name]
            excess = 0.0 if bound is None else max(0.0, value - bound)
            total += weights[weight_name] * (value + pen * excess)  # type: ignore[operator]
        return total

    params = (*bounds.items(), *weights.items(), ("penalty", pen))
    needs = ("params", "macs", "activations")
    return Objective("tiny_ml", "TinyML score", cheap=True, needs=needs, fn=fn, params=tuple(params))


@dataclass(frozen=True)
class Constraint:
    """A bound on one record key: `value <= bound` when `upper`, else `value >= bound` (pymoo's `G <= 0`)."""

    name: str
    key: str
    bound: float
    upper: bool
    cheap: bool

    def violation(self, stats: Mapping[str, object]) -> float:
        """`value − bound` (upper) or `bound − value` (lower): <= 0 when satisfied, the excess otherwise."""
        value = _read(stats, self.key, f"constraint {self.name}")
        return value - self.bound if self.upper else self.bound - value


CONSTRAINTS: Registry[Constraint] = Registry("constraint")


def _register_constraint(name: str, key: str, upper: bool, cheap: bool, help: str, limit: float | None = None) -> None:
    """Register the constraint `name`: a bound on stats `key`, checked to lie in `[0, limit]`."""

    def factory(bound: float) -> Constraint:
        value = _non_negative(name, bound, optional=False)
        assert value is not None
        if limit is not None and value > limit:
            raise UsageError(f"{name} must be at most {limit:g} ({help}), got {bound!r}")
        return Constraint(name, key, value, upper, cheap)

    CONSTRAINTS.register(name, help=help, key=key, upper=upper, cheap=cheap)(factory)


_register_constraint("pmax", "params", upper=True, cheap=True, help="max params (M)")
_register_constraint("mmax", "macs", upper=True, cheap=True, help="max MACs (M)")
_register_constraint("amax", "activations", upper=True, cheap=True, help="max activations (M)")
_register_constraint("top1min", "top1", upper=False, cheap=False, help="min top-1 accuracy in percent", limit=100.0)


def list_constraints() -> list[str]:
    """Names of every registered constraint (each is also the name of the flag giving its bound)."""
    return CONSTRAINTS.names()


def build_constraints(objectives: Sequence[Objective] = (), **bounds: float | None) -> list[Constraint]:
    """The constraints whose bound is given, in registration order (params, MACs, activations in millions, top-1 in %).

    A constraint that one of `objectives` takes over (its `bound`) bounds that objective's key instead, measured
    rather than computed (`--mmax` on `avg_macs` when that is searched). An unknown name, a negative or
    non-finite bound, or one above the constraint's limit is a `UsageError`.
    """
    for name in bounds:
        CONSTRAINTS.entry(name)
    owners = {o.bound: o for o in objectives if o.bound is not None}
    out = []
    for e in CONSTRAINTS.entries():
        if bounds.get(e.name) is None:
            continue
        constraint = CONSTRAINTS.create(e.name, bound=bounds[e.name])
        if e.name in owners:
            constraint = replace(constraint, key=owners[e.name].needs[0], cheap=owners[e.name].cheap)
        out.append(constraint)
    return out


def measured_keys(objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> tuple[str, ...]:
    """The record keys that objectives and constraints need and only an evaluation measures, in first-use order."""
    needs = [k for o in objectives if not o.cheap for k in o.needs] + [c.key for c in constraints if not c.cheap]
    return tuple(dict.fromkeys(needs))


def feasible(stats: Mapping[str, object], constraints: Sequence[Constraint]) -> bool:
    """Whether the record satisfies every constraint (true when there are none)."""
    return all(c.violation(stats) <= 0.0 for c in constraints)


def objective_matrix(records: Sequence[Mapping[str, object]], objectives: Sequence[Objective]) -> np.ndarray:
    """`F[i, j]` = objective `j` of record `i`, shape `[n_records, n_objectives]`, float64."""
    values = [[o.value(r) for o in objectives] for r in records]
    return np.asarray(values, dtype=float).reshape(len(records), len(objectives))


def constraint_matrix(records: Sequence[Mapping[str, object]], constraints: Sequence[Constraint]) -> np.ndarray:
    """`G[i, j]` = violation of constraint `j` by record `i` (pymoo's `G <= 0`), shape `[n, n_constraints]`."""
    values = [[c.violation(r) for c in constraints] for r in records]
    return np.asarray(values, dtype=float).reshape(len(records), len(constraints))


def feasible_front(
    records: Sequence[Mapping[str, object]], objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> np.ndarray:
    """Sorted indices of the records on the non-dominated front of those satisfying every constraint."""
    if not records:
        return np.zeros(0, dtype=int)
    ok = (constraint_matrix(records, constraints) <= 0).all(axis=1)
    return non_dominated(objective_matrix(records, objectives), feasible=ok)
