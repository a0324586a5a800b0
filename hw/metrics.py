"""The cost record of one network: params, MACs, activations, peak activations and latency."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

COST_KEYS = ("params", "macs", "activations", "peak_act", "latency")
"""The cost keys of a record (`CostMetrics.as_dict`)."""


@dataclass(frozen=True)
class CostMetrics:
    """Cost of one architecture, in millions (see the module docstring for the exact definitions)."""

    params: float
    macs: float
    activations: float
    peak_act: float
    latency: float

    def as_dict(self) -> dict[str, float]:
        """`{"params": .., "macs": .., "activations": .., "peak_act": .., "latency": ..}`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CostCounts:
    """The exact integer counts behind `CostMetrics` (elements and multiply-accumulates, not millions).

    `peak_act` is None when it could not be measured (`measure_counts` on a network that is not a static ofa
    MobileNetV3).
    """

    params: int
    macs: int
    activations: int
    peak_act: int | None
    latency: int

    def to_metrics(self) -> CostMetrics:
        """The same numbers in millions; an unmeasured `peak_act` becomes NaN."""
        peak = math.nan if self.peak_act is None else self.peak_act / 1e6
        return CostMetrics(self.params / 1e6, self.macs / 1e6, self.activations / 1e6, peak, self.latency / 1e6)
