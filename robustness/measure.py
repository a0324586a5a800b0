"""`RobustnessMeasurement`: the robustness numbers asked for, checked before any long work and measured after it.

It is shared by the three places that measure a network's robustness:
- the search's evaluators (`evaluator.supernet`): flatness on the validation split and, with `--ood_eval`, mCE over
  generated corruptions of the validation images, so that nothing the search selects on comes from the test split;
- `train.py` (`--eval_robust`, `--ood_eval`) and `python -m robustness.evaluate`, for a chosen network: flatness on
  the validation split, mCE on the corrupted test split (`robustness.ood.corruption_source`: the Hendrycks files
  when the data root has them, an ImageNet-C-style `--ood_data` folder, else generated corruptions).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from data import DatasetSplits
from data.cifar_c import SEVERITIES
from robustness.config import RobustConfig
from robustness.flatness import measure_flatness
from robustness.ood import CorruptionSource, GeneratedSource, corruption_errors, corruption_source, ood_stats
from robustness.ood import read_reference as read_reference_errors
from utils.errors import UsageError


class RobustnessMeasurement:
    """The measurements of `robust` for one dataset; every input is checked at construction.

    `search=True` measures corruptions on the validation split, generated (a search selects on them);
    otherwise on the test split from `corruption_source(dataset, data, ood_data)`, with the normalised mCE when
    `ood_reference` names a reference network's `net.stats`.
    """

    def __init__(
        self,
        robust: RobustConfig,
        *,
        dataset: str,
        data: str | None = None,
        ood_data: str | None = None,
        ood_reference: str | None = None,
        search: bool = False,
    ) -> None:
        self.robust = robust.validate()
        self.search = search
        self.corruptions = robust.corruption_names()
        self.severities = tuple(range(1, SEVERITIES + 1))
        if (ood_data or ood_reference) and not robust.ood_eval:
            raise UsageError("--ood_data and --ood_reference are settings of --ood_eval: add --ood_eval")
        self.source: CorruptionSource | None = None
        if robust.ood_eval:
            self.source = GeneratedSource() if search else corruption_source(dataset, data, ood_data)
            self.source.check(self.corruptions, self.severities)
        self.reference = read_reference_errors(ood_reference) if ood_reference else None

    @property
    def asked(self) -> bool:
        """Whether anything is to be measured."""
        return bool(self.robust.measures)

    def measure(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        resolution: int,
        *,
        seed: int,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        limit: int | None = None,
    ) -> dict[str, Any]:
        """The `net.stats` entries: `robustness`, `sigma`, ... with `--eval_robust`; `mCE`, ... with `--ood_eval`.

        `limit` keeps the first images of each split measured (the evaluator's validation limit).
        """
        stats: dict[str, Any] = {}
        if self.robust.eval_robust:
            flatness = measure_flatness(
                model,
                splits,
                "valid",
                resolution,
                self.robust.flatness,
                seed=seed,
                batch_size=batch_size,
                device=device,
                limit=limit,
            )
            stats.update(flatness.stats())
        if self.source is not None:
            errors = corruption_errors(
                model,
                replace(splits, test=splits.valid) if self.search else splits,
                self.source,
                resolution=resolution,
                corruptions=self.corruptions,
                severities=self.severities,
                seed=seed,
                batch_size=batch_size,
                device=device,
                limit=limit,
            )
            stats.update(ood_stats(errors, self.reference, source_name=self.source.name))
        return stats
