"""What a search's accuracy predictor regresses on: the space's features of a genome plus its log costs.

The costs come from the space's exact cost function, never from measurements, so an architecture not yet evaluated
gets the same features as one in the archive. MACs and parameters carry most of what decides accuracy in a
weight-sharing space; adding their logarithms to the layer features lifts the out-of-sample Kendall tau of the GP
on the 2,162-subnet ImageNet table from 0.868 to 0.913 at 50 training rows (`bench/predictors.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from acc_predictor.base import correlations
from evaluator.base import EvalResult
from search_space.base import CostFunction, SearchSpace

COST_FEATURES = ("macs", "params")
"""The cost metrics whose logarithms join the space's features."""
CACHE_SIZE = 100_000
"""Genomes whose cost records `CostRecords` keeps (about 50 MB); past it the cache starts afresh."""


class CostRecords:
    """The exact cost metrics (`CostMetrics.as_dict`) of integer genomes, memoised per genome.

    NSGA-II on the surrogate meets the same genomes again within a step and across iterations; each record is
    computed once and handed out as a fresh copy, so a caller may add keys (predicted `top1`) to it.
    """

    def __init__(self, space: SearchSpace, costs: CostFunction) -> None:
        self.space = space
        self.costs = costs
        self._cache: dict[bytes, dict[str, Any]] = {}

    def __call__(self, genomes: np.ndarray) -> list[dict[str, Any]]:
        """One record per row of `genomes`."""
        genomes = np.asarray(genomes, dtype=np.int64).reshape(-1, self.space.n_var)
        if len(self._cache) + len(genomes) > CACHE_SIZE:
            self._cache.clear()
        out = []
        for x in genomes:
            key = x.tobytes()
            record = self._cache.get(key)
            if record is None:
                record = self._cache[key] = self.costs(self.space.decode(x)).as_dict()
            out.append(dict(record))
        return out


class SurrogateFeatures:
    """Maps integer genomes to predictor inputs in [0, 1]: `space.features` then each log cost.

    A log cost is scaled by its values at the space's smallest and largest architectures (clipped to [0, 1] for a
    space whose costs are not monotone in its genes; 0 where the two are equal).
    """

    def __init__(
        self,
        space: SearchSpace,
        costs: CostFunction,
        keys: Sequence[str] = COST_FEATURES,
        cost_records: CostRecords | None = None,
    ) -> None:
        self.space = space
        self.cost_records = CostRecords(space, costs) if cost_records is None else cost_records
        self.keys = tuple(keys)
        ends = np.array([[costs(arch).as_dict()[k] for k in self.keys] for arch in (space.smallest(), space.largest())])
        self.low = np.log(np.maximum(ends.min(axis=0), 1e-12))
        self.span = np.log(np.maximum(ends.max(axis=0), 1e-12)) - self.low

    @property
    def n_features(self) -> int:
        """Number of columns of a feature matrix."""
        return self.space.n_var + len(self.keys)

    @property
    def xl(self) -> np.ndarray:
        """Lower bound of every feature (0)."""
        return np.zeros(self.n_features)

    @property
    def xu(self) -> np.ndarray:
        """Upper bound of every feature (1)."""
        return np.ones(self.n_features)

    def __call__(self, genomes: np.ndarray, records: list[dict[str, Any]] | None = None) -> np.ndarray:
        """Features of genomes `genomes`; `records` are their cost metrics when the caller has them already."""
        genomes = np.asarray(genomes, dtype=np.int64).reshape(-1, self.space.n_var)
        records = self.cost_records(genomes) if records is None else records
        logs = np.log(np.maximum(np.array([[r[k] for k in self.keys] for r in records], dtype=float), 1e-12))
        logs = logs.reshape(len(genomes), len(self.keys))
        scaled = np.where(self.span > 0, (logs - self.low) / np.where(self.span > 0, self.span, 1.0), 0.0)
        return np.hstack([self.space.features(genomes), np.clip(scaled, 0.0, 1.0)])


def with_outcome(surrogate: dict[str, Any], results: list[EvalResult]) -> dict[str, Any]:
    """`surrogate` (an iteration's record of its predictor) plus what its candidates measured.

    Adds `measured_top1` (None for a failed evaluation) beside `predicted_top1`, and `prospective_tau`, the Kendall
    tau between the two over the successful candidates: whether the surrogate ranked what it proposed right.
    """
    if "predicted_top1" not in surrogate:
        return surrogate
    measured = [r.top1 if r.ok else None for r in results]
    pairs = [(p, m) for p, m in zip(surrogate["predicted_top1"], measured, strict=True) if m is not None]
    tau = correlations(np.array([m for _, m in pairs]), np.array([p for p, _ in pairs]))[1] if len(pairs) > 1 else None
    return {**surrogate, "measured_top1": measured, "prospective_tau": tau}
