"""The `ee` evaluator: a subnet measured as an early-exit network (EDANAS, NACHOS).

It does what the `supernet` evaluator does (inherit weights, recalibrate batch norm, optionally fine-tune), then
attaches the exit heads the architecture names, trains them with `--method`, chooses the thresholds and measures
the network on the validation split (`early_exit.pipeline`). The result's `top1` is the early-exit network's,
`params` count the heads too, `macs` stays the whole backbone's, and the extras carry `avg_macs`, `exits_ratio`,
`epsilon`, per-exit top-1 and the per-exit MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from early_exit.config import EETrainConfig
from early_exit.pipeline import ExitTrainer, attach_exits, measure_exits, split_outputs
from evaluator.registry import register_evaluator
from evaluator.supernet import SupernetEvalConfig, SupernetEvaluator
from search_space import Arch, SearchSpace
from search_space.ofa_mbv3_ee import EarlyExitSpace
from training.finetune import FineTuneConfig
from utils.errors import UsageError

if TYPE_CHECKING:
    from search.config import SearchConfig


@dataclass(frozen=True)
class EarlyExitEvalConfig(SupernetEvalConfig):
    """The supernet evaluator's settings plus how the exits are trained and budgeted (`mmax`, `top1min`)."""

    ee: EETrainConfig = field(default_factory=EETrainConfig)
    mmax: float | None = None
    top1min: float | None = None


def check_early_exit_space(space: SearchSpace) -> EarlyExitSpace:
    """`space`, or a `UsageError` when it is not an early-exit space."""
    if not isinstance(space, EarlyExitSpace):
        raise UsageError(
            f"--evaluator ee measures early-exit networks, but --search_space {space.name} has single-exit ones; "
            "use --search_space eemobilenetv3 or cbnmobilenetv3"
        )
    return space


@register_evaluator("ee", help="early-exit networks: supernet weights, exit heads trained, thresholds tuned")
class EarlyExitEvaluator(SupernetEvaluator):
    """Evaluates early-exit subnets of one supernet (weights loaded once, at construction)."""

    name = "ee"
    measures = ("top1", "avg_macs")
    refines = False
    switches: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def measured(cls, search: SearchConfig) -> tuple[str, ...]:
        """`top1` and `avg_macs`: the robustness measurements are for single-exit networks."""
        return cls.measures

    @classmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """`{"config": EarlyExitEvalConfig}` for a search, every input checked (the space must have exits)."""
        check_early_exit_space(search.space())
        if search.robust.measures:
            raise UsageError("--eval_robust and --ood_eval measure single-exit networks, not the ee evaluator's")
        base = super().arguments(search)["config"]
        assert isinstance(base, SupernetEvalConfig)
        inherited = {f.name: getattr(base, f.name) for f in fields(SupernetEvalConfig)}
        config = EarlyExitEvalConfig(**inherited, ee=search.ee.validate(), mmax=search.mmax, top1min=search.top1min)
        return {"config": config}

    def __init__(self, config: EarlyExitEvalConfig, device: str | None = None) -> None:
        super().__init__(config, device)
        self.ee_space = check_early_exit_space(self.space)
        self.ee_config = config

    def _train_and_validate(self, arch: Arch) -> tuple[nn.Module, float, dict[str, Any]]:
        cfg = self.ee_config
        method = cfg.ee.method
        resolution = self.space.resolution(arch)
        net = attach_exits(self.ee_space, self._subnet(arch), arch, self.splits.n_classes, method, seed=cfg.seed)
        tune = FineTuneConfig(epochs=cfg.ee.epochs, optim=cfg.optim, seed=cfg.seed, mixed_precision=False)
        trainer = ExitTrainer(net, self.splits, resolution, cfg.ee, tune, self.device, cfg.mmax)
        for _ in range(cfg.ee.epochs):
            trainer.train_epoch()
        outputs, labels = split_outputs(net, self.splits, "valid", resolution, self.device, cfg.valid_limit)
        epsilon = None if cfg.ee.tune_epsilon else self.ee_space.thresholds(arch)
        measured = measure_exits(trainer.costs, outputs, labels, method, epsilon, cfg.mmax, cfg.top1min)
        return net, measured.result.top1, {"params": measured.costs.params, **measured.stats()}
