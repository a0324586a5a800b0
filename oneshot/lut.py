"""Lookup tables of the one-shot spaces: the exact cost of every candidate of every layer, counted alone.

A network of a one-shot space is a chain, so its params, MACs, CNAS activations and systolic-array latency are the
fixed parts' (stem, fixed blocks, head, classifier) plus one entry per layer: `LookupTable.build` counts each with
`hw.measure.measure_counts` at the layer's input shape (batch 1), and `cost(path)` adds them up, exactly as
`measure_counts` counts the extracted network. `expected(probabilities)` is the differentiable cost of the
differentiable search (FBNet, ProxylessNAS): the probability-weighted sum of the entries.

`peak_act` is also tabulated (`hw`'s `peak_act` cost model: the largest layer's input plus output elements); it
combines by maximum, not sum, so `cost(path, "peak_act")` is exact but `expected` does not take it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from hw.measure import measure_counts, model_cost
from hw.metrics import CostCounts
from hw.systolic import DEFAULT_ARRAY
from oneshot.blocks import create_block
from oneshot.spaces import OneShotSpec
from oneshot.supernet import OneShotSupernet, build_stem, build_tail
from search_space.base import InvalidArchitecture
from utils.errors import UsageError

LUT_METRICS = ("macs", "params", "activations", "latency")
"""Tabulated sums: exact integer counts as `hw.measure.measure_counts` gives them."""
HC_METRICS = ("macs", "flops", "params")
"""The metrics a hardware constraint may use; `flops` is twice `macs`."""
PEAK_METRIC = "peak_act"
"""The tabulated maximum: `hw`'s `peak_act` cost model (largest layer input plus output elements)."""
SUM_METRICS = (*LUT_METRICS, "flops")
"""The metrics `cost` sums and `expected` takes."""
ALL_METRICS = (*SUM_METRICS, PEAK_METRIC)
"""Every metric `cost` takes."""


def check_metric(metric: str, allowed: Sequence[str] = ALL_METRICS) -> str:
    """`metric` if it is one of `allowed`, else a `UsageError` listing the hardware-constraint and LUT metrics."""
    if metric not in allowed:
        raise UsageError(
            f"unknown cost metric {metric!r}; hardware-constraint metrics: {', '.join(HC_METRICS)}; "
            f"lookup-table metrics: {', '.join(m for m in allowed if m != 'flops')}"
        )
    return metric


def _count(module: nn.Module, shape: tuple[int, ...], array: tuple[int, int]) -> dict[str, int]:
    counts = measure_counts(module, shape, array)
    peak = int(model_cost(PEAK_METRIC, module, shape))
    return {
        "macs": int(counts.macs),
        "params": int(counts.params),
        "activations": int(counts.activations),
        "latency": int(counts.latency),
        PEAK_METRIC: peak,
    }


@lru_cache(maxsize=4096)
def block_counts(name: str, c_in: int, c_out: int, stride: int, size: int, array: tuple[int, int]) -> dict[str, int]:
    """The counts of block `name` alone on a `(c_in, size, size)` input (cached: they never change)."""
    with torch.random.fork_rng(devices=[]):  # initialising weights must not move the caller's random stream
        block = create_block(name, c_in, c_out, stride)
    return _count(block, (c_in, size, size), array)


@dataclass
class LookupTable:
    """The exact cost of every candidate of every layer of one space at one resolution, plus the fixed parts'.

    `table[metric][layer][candidate]` and `fixed[metric]` for the `LUT_METRICS` and `peak_act`.
    """

    resolution: int
    fixed: dict[str, int]
    table: dict[str, list[list[int]]]
    space: str = ""
    scale: str = ""
    width_mult: float = 1.0
    n_classes: int = 0
    array: tuple[int, int] = DEFAULT_ARRAY
    _tensors: dict[tuple[str, str], list[Tensor]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        spec: OneShotSpec | OneShotSupernet,
        n_classes: int | None = None,
        resolution: int = 32,
        array: tuple[int, int] = DEFAULT_ARRAY,
    ) -> LookupTable:
        """Count every candidate of `spec` (or a supernet's spec; `n_classes` defaults to its) at `resolution`."""
        if isinstance(spec, OneShotSupernet):
            n_classes = spec.n_classes if n_classes is None else n_classes
            spec = spec.spec
        if n_classes is None:
            raise UsageError("LookupTable.build needs n_classes with a OneShotSpec")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise UsageError(f"resolution must be a positive integer, got {resolution!r}")
        return _build(spec, int(n_classes), resolution, tuple(int(a) for a in array))

    @property
    def n_layers(self) -> int:
        """Number of searchable layers."""
        return len(self.table["macs"])

    def check_path(self, path: Sequence[int]) -> list[int]:
        """`path` as ints, checked against the table's layers and choices (`InvalidArchitecture` naming the layer)."""
        values = [int(v) for v in path]
        if len(values) != self.n_layers:
            raise InvalidArchitecture(f"a path has {self.n_layers} choices (one per layer), got {len(values)}")
        for i, (v, row) in enumerate(zip(values, self.table["macs"], strict=True)):
            if not 0 <= v < len(row):
                raise InvalidArchitecture(f"layer {i} choice {v} is outside [0, {len(row) - 1}]")
        return values

    def cost(self, path: Sequence[int], metric: str = "macs") -> int:
        """The fixed parts' plus the path's entries (`flops` twice the MACs; `peak_act` their maximum)."""
        check_metric(metric)
        if metric == "flops":
            return 2 * self.cost(path, "macs")
        path = self.check_path(path)
        rows = self.table[metric]
        entries = [rows[i][c] for i, c in enumerate(path)]
        if metric == PEAK_METRIC:
            return max([self.fixed[metric], *entries])
        return self.fixed[metric] + sum(entries)

    def counts(self, path: Sequence[int]) -> CostCounts:
        """The path's params, MACs, activations and latency (`peak_act` None, as `measure_counts` gives it)."""
        values = {m: self.cost(path, m) for m in LUT_METRICS}
        return CostCounts(values["params"], values["macs"], values["activations"], None, values["latency"])

    def _rows(self, metric: str, device: torch.device) -> list[Tensor]:
        key = (metric, str(device))
        if key not in self._tensors:
            self._tensors[key] = [torch.tensor(r, dtype=torch.float64, device=device) for r in self.table[metric]]
        return self._tensors[key]

    def expected(self, probabilities: Sequence[Tensor], metric: str = "macs") -> Tensor:
        """`fixed + sum_l sum_c p_lc * table[l][c]`: a float64 scalar, differentiable in the probabilities."""
        check_metric(metric, SUM_METRICS)
        scale = 2 if metric == "flops" else 1
        metric = "macs" if metric == "flops" else metric
        if len(probabilities) != self.n_layers:
            raise UsageError(
                f"expected needs {self.n_layers} probability vectors (one per layer), got {len(probabilities)}"
            )
        device = probabilities[0].device if self.n_layers else torch.device("cpu")
        total = torch.tensor(float(self.fixed[metric]), dtype=torch.float64, device=device)
        for i, (p, row) in enumerate(zip(probabilities, self._rows(metric, device), strict=True)):
            if p.shape != row.shape:
                raise UsageError(f"layer {i}: probabilities of shape {tuple(p.shape)}, expected {tuple(row.shape)}")
            total = total + (p.to(torch.float64) * row).sum()
        return total * scale

    def _extreme(self, metric: str, pick: Any) -> tuple[list[int], int]:
        check_metric(metric)
        base = "macs" if metric == "flops" else metric
        path = [int(pick(row)) for row in self.table[base]]
        return path, self.cost(path, metric)

    def smallest(self, metric: str = "macs") -> tuple[list[int], int]:
        """The path of least `metric` (per layer the first cheapest candidate) and its cost."""
        return self._extreme(metric, lambda row: min(range(len(row)), key=row.__getitem__))

    def largest(self, metric: str = "macs") -> tuple[list[int], int]:
        """The path of most `metric` (per layer the first most expensive candidate) and its cost."""
        return self._extreme(metric, lambda row: max(range(len(row)), key=lambda c: (row[c], -c)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (`from_dict` reads it back)."""
        return {
            "space": self.space,
            "scale": self.scale,
            "width_mult": self.width_mult,
            "n_classes": self.n_classes,
            "resolution": self.resolution,
            "array": list(self.array),
            "fixed": dict(self.fixed),
            "table": {m: [list(r) for r in rows] for m, rows in self.table.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LookupTable:
        """The table `to_dict` wrote; a malformed dict is a `UsageError`."""
        try:
            table = {str(m): [[int(v) for v in row] for row in rows] for m, rows in d["table"].items()}
            fixed = {str(m): int(v) for m, v in d["fixed"].items()}
            missing = [m for m in (*LUT_METRICS, PEAK_METRIC) if m not in table or m not in fixed]
            if missing:
                raise KeyError(", ".join(missing))
            if len({len(rows) for rows in table.values()}) != 1:
                raise ValueError("metrics with different numbers of layers")
            return cls(
                resolution=int(d["resolution"]),
                fixed=fixed,
                table=table,
                space=str(d.get("space", "")),
                scale=str(d.get("scale", "")),
                width_mult=float(d.get("width_mult", 1.0)),
                n_classes=int(d.get("n_classes", 0)),
                array=tuple(int(a) for a in d.get("array", DEFAULT_ARRAY)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise UsageError(f"not a lookup table: {type(err).__name__}: {err}") from None

    def to_json(self) -> str:
        """`to_dict` as JSON text."""
        return json.dumps(self.to_dict())


def _build(spec: OneShotSpec, n_classes: int, resolution: int, array: tuple[int, int]) -> LookupTable:
    with torch.random.fork_rng(devices=[]):
        stem, tail = build_stem(spec), build_tail(spec, n_classes)
    front = _count(stem, (3, resolution, resolution), array)
    back = _count(tail, spec.output_shape(resolution), array)
    fixed = {m: front[m] + back[m] for m in LUT_METRICS}
    fixed[PEAK_METRIC] = max(front[PEAK_METRIC], back[PEAK_METRIC])
    table: dict[str, list[list[int]]] = {m: [] for m in (*LUT_METRICS, PEAK_METRIC)}
    for layer, (c, size, _) in zip(spec.layers, spec.layer_input_shapes(resolution), strict=True):
        entries = [block_counts(n, c, layer.c_out, layer.stride, size, array) for n in layer.candidates]
        for m in table:
            table[m].append([e[m] for e in entries])
    return LookupTable(
        resolution=resolution,
        fixed=fixed,
        table=table,
        space=spec.name,
        scale=spec.scale,
        width_mult=spec.width_mult,
        n_classes=n_classes,
        array=array,
    )


@lru_cache(maxsize=64)
def lookup_table(
    spec: OneShotSpec, n_classes: int, resolution: int, array: tuple[int, int] = DEFAULT_ARRAY
) -> LookupTable:
    """`LookupTable.build(spec, n_classes, resolution, array)`, cached (do not modify the table returned)."""
    return LookupTable.build(spec, n_classes, resolution, tuple(array))
