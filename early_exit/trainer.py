"""The trainer behind `python -m early_exit.train`: `train.py`'s `NetTrainer` for an early-exit network.

Everything `NetTrainer` does is kept (inputs checked at construction, batch-norm recalibration, the per-epoch
checkpoint that `--resume` continues exactly, selection on validation, one test measurement, atomic files); its
hooks make the network an `EarlyExitNet` trained by `early_exit.pipeline.ExitTrainer`:
- The subnet must be an early-exit one (`t` thresholds or `b` flags) with at least one early exit.
- Starting weights are a backbone's (`net.inherited`, a single-exit `ckpt.pth`), whose heads then start fresh from
  `--seed`, or an early-exit network's (`ckpt.pth` of the `ee` evaluator or of an earlier run), told apart by their
  keys (`is_early_exit_state`).
- The selected epoch is the best trained one by validation top-1 among those whose thresholds meet `--mmax`
  (`EENetTrainer._rank`); fresh heads' epoch 0 is never chosen when there are epochs to train.
- Each epoch is validated as the search does (`early_exit.pipeline.measure_exits`): thresholds tuned on the
  validation split with `--tune_epsilon` or when the space has none, else the genome's, repaired to `--mmax`. The
  test split is measured once, with the thresholds chosen on validation.
- `net.stats` holds both splits' exit numbers under `valid` and `test`; `--export onnx` writes every exit's outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from early_exit.config import EENetTrainConfig
from early_exit.costs import ExitCosts, exit_costs
from early_exit.model import EarlyExitNet
from early_exit.pipeline import ExitMeasurement, ExitTrainer, attach_exits, measure_exits, split_outputs
from search_space import SEARCH_SPACES, Arch, SearchSpace, create_search_space, read_subnet
from search_space.ofa_mbv3_ee import BACKBONE_KEYS, EarlyExitSpace
from training.checkpoint import state_dict_of
from training.finetune import FineTuneConfig
from training.trainer import EpochTrainer, NetTrainer, not_finite, validate_arch
from utils.errors import UsageError

log = logging.getLogger("early_exit.train")


def early_exit_spaces() -> dict[str, str]:
    """The registered early-exit search spaces, by the architecture key of their exit genes (`t`, `b`)."""
    classes = [SEARCH_SPACES.get(name) for name in SEARCH_SPACES.names(aliases=False)]
    return {c.key: c.name for c in classes if isinstance(c, type) and issubclass(c, EarlyExitSpace)}


def is_early_exit_state(weights: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is an `EarlyExitNet`'s (keys `segments.*`, `heads.*`) rather than a backbone's."""
    return any(key.startswith("segments.") for key in weights)


class EENetTrainer(NetTrainer):
    """One fine-tuning run of an early-exit network; like `NetTrainer`, nothing is written before `run`."""

    program = "early_exit.train"
    cfg: EENetTrainConfig
    space: EarlyExitSpace
    model: EarlyExitNet
    fresh_heads: bool
    """Whether the exit heads started fresh (from `--seed`) rather than from an early-exit network's weights."""

    def _read_subnet(self, path: Path) -> tuple[SearchSpace, Arch]:
        """The early-exit space (`--search_space`, else the one the exit key names) and the subnet's architecture."""
        arch = read_subnet(path)
        spaces = early_exit_spaces()
        keys = [key for key in spaces if key in arch]
        if not keys:
            raise UsageError(
                f"{path} describes a single-exit network (no {' or '.join(map(repr, spaces))} exit genes): "
                "fine-tune it with train.py"
            )
        name = self.cfg.search_space or spaces[keys[0]]
        space = create_search_space(name).unrestricted()
        if not isinstance(space, EarlyExitSpace):
            raise UsageError(
                f"--search_space {name} has single-exit networks; early_exit.train takes an early-exit one: "
                f"{', '.join(spaces.values())}"
            )
        arch = validate_arch(arch, str(path), space)
        if not space.exit_stages(arch):
            raise UsageError(f"{path} has no early exit on, a single-exit network: fine-tune it with train.py")
        return space, arch

    def _check_arch(self, state: dict[str, Any], path: Path) -> None:
        """An early-exit network's weights must have the run's backbone and exits; a backbone's, its backbone."""
        mine = self.space.backbone(self.arch)
        if is_early_exit_state(state_dict_of(state, path)):
            theirs = validate_arch(state["arch"], str(path), self.space)
            exits = self.space.exit_stages(theirs) == self.space.exit_stages(self.arch)
            if self.space.backbone(theirs) != mine or not exits:
                raise UsageError(f"{path} holds an early-exit network of another architecture than {self.paths.subnet}")
            return
        arch = state["arch"]
        backbone = {k: arch[k] for k in BACKBONE_KEYS if k in arch} if isinstance(arch, dict) else arch
        if validate_arch(backbone, str(path), self.space.ofa) != mine:
            raise UsageError(f"{path} holds weights of another backbone than {self.paths.subnet}")

    def _build_model(self, weights: dict[str, torch.Tensor] | None, path: Path) -> nn.Module:
        """The backbone with a backbone's weights, its exit heads attached (seeded), or a whole network's weights."""
        whole = weights is not None and is_early_exit_state(weights)
        self.fresh_heads = not whole
        backbone = super()._build_model(None if whole else weights, path)
        cfg = self.cfg
        net = attach_exits(self.space, backbone, self.arch, self.n_classes, cfg.ee.method, seed=cfg.seed)
        if whole and weights is not None:
            self._load_weights(net, weights, path)
        return net

    def _tuner(self, tune: FineTuneConfig) -> EpochTrainer:
        """The early-exit training loop (heads alone during the warm-up), with the run's `--mmax`."""
        return ExitTrainer(self.model, self.splits, self.resolution, self.cfg.ee, tune, self.device, self.cfg.mmax)

    @cached_property
    def exit_costs(self) -> ExitCosts:
        """The network's exact per-exit costs (fixed once the exits are attached)."""
        return exit_costs(self.model, self.resolution)

    def measure_split(self, split: str, epsilon: Sequence[float] | None, mmax: float | None) -> ExitMeasurement:
        """The network on `split` with thresholds `epsilon`, chosen there when None and repaired to `mmax` if given.

        Only the validation split may choose: the test split gets the thresholds chosen on validation, `mmax` None.
        """
        outputs, labels = split_outputs(self.model, self.splits, split, self.resolution, self.device, None)
        if not all(bool(torch.isfinite(logits).all()) for logits in outputs.logits):
            raise not_finite(f"non-finite logits on the {split} split")
        method, top1min = self.cfg.ee.method, self.cfg.top1min
        return measure_exits(self.exit_costs, outputs, labels, method, epsilon, mmax, top1min)

    def _validation(self) -> ExitMeasurement:
        """The network on the validation split, thresholds chosen there (or the genome's) within `--mmax`."""
        genome = None if self.cfg.ee.tune_epsilon else self.space.thresholds(self.arch)
        return self.measure_split("valid", genome, self.cfg.mmax)

    def _validate(self) -> dict[str, Any]:
        """The early-exit network's validation top-1, average MACs and thresholds."""
        result = self._validation().result
        return {"valid_top1": result.top1, "valid_avg_macs": result.avg_macs, "epsilon": result.epsilon}

    def _rank(self, epoch: int, numbers: dict[str, Any]) -> list[Any]:
        """Trained heads first, then thresholds within `--mmax`, then validation top-1, then fewer average MACs.

        Epoch 0 of freshly attached heads is passed over when training follows: its untrained exits are never
        confident, so it would win on top-1 with every input leaving at the last exit.
        """
        untrained = epoch == 0 and self.fresh_heads and self.cfg.epochs > 0
        mmax, avg_macs = self.cfg.mmax, numbers["valid_avg_macs"]
        return [not untrained, mmax is None or avg_macs <= mmax, numbers["valid_top1"], -avg_macs]

    def _selected(self) -> dict[str, Any]:
        """Both splits' exit numbers: validation (which chooses the thresholds), then test once with them."""
        valid = self._validation()
        test = self.measure_split("test", valid.result.epsilon, None)
        costs = self.space.cost_function(self.n_classes, self.width_mult)(self.arch)
        log.info(
            "thresholds %s (chosen on validation): average MACs %.3f M on validation, %.3f M on test",
            valid.result.epsilon,
            valid.result.avg_macs,
            test.result.avg_macs,
        )
        return {
            "top1": valid.result.top1,
            "valid_top1": valid.result.top1,
            "test_top1": test.result.top1,
            "avg_macs": valid.result.avg_macs,
            "best_epoch": self.best["epoch"],
            **costs.as_dict(),
            "params": valid.costs.params,
            "valid": split_stats(valid),
            "test": split_stats(test),
        }

    def exportable(self) -> nn.Module:
        """The network with every exit's outputs (logits, then confidences) as plain tensors."""
        return self.model.exportable()


def split_stats(measured: ExitMeasurement) -> dict[str, Any]:
    """One split's numbers in `net.stats`: top-1, the exit numbers, and the whole network's parameters."""
    return {"top1": measured.result.top1, **measured.stats(), "params": measured.costs.params}
