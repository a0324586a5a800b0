"""`EETrainConfig`: how an early-exit network is trained, with the flags of upstream CNAS's `early_exit/train.py`.

Like `training.config.OptimConfig`, its `checks()` can join those of a command line's config, and `validate()`
raises a `UsageError` with the first failure's one-line message. `EENetTrainConfig` is the run of
`python -m early_exit.train`: a `NetTrainConfig` nesting an `EETrainConfig`, plus the exits' budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from early_exit.losses import EE_LOSSES, needs_confidence
from training.config import NetTrainConfig
from utils.errors import UsageError


@dataclass(frozen=True)
class EETrainConfig:
    """The early-exit training settings, named and defaulting as upstream's flags.

    Bool fields are command-line switches, off by default. `train_backbone` has no flag upstream, whose `bernulli`
    path always freezes the backbone and whose EDANAS runs fine-tune it: here the heads alone train unless it is on.
    The MACs budget and the least top-1 are the run's `--mmax` and `--top1min`, passed beside this config.

    A run trains `warmup_ee_epochs + ee_epochs` epochs (`epochs`); the support-set term is on once the warm-up is
    over (`support_start`; upstream switches it on at epoch `ee_epochs`, which for its defaults is the same epoch
    only when the two counts agree).
    """

    method: str = "bernulli"  # a training method of `early_exit.losses`
    support_set: bool = False  # pull the confidences towards per-class exit accuracies on a support set
    tune_epsilon: bool = False  # choose the exit thresholds on the validation split after training
    w_alpha: float = 1.0  # weight of the classification term
    w_beta: float = 0.0  # weight of the MACs (energy) term
    w_gamma: float = 0.0  # weight of the support-set term
    warmup_ee_epochs: int = 2
    ee_epochs: int = 3
    train_backbone: bool = False  # also train the backbone (else the exit heads alone)

    @property
    def epochs(self) -> int:
        """Epochs of early-exit training in all."""
        return self.warmup_ee_epochs + self.ee_epochs

    @property
    def support_start(self) -> int:
        """The first epoch (from 0) with the support-set term on."""
        return self.warmup_ee_epochs

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag (method known)."""
        confident = " or ".join(m for m in EE_LOSSES.names(aliases=False) if needs_confidence(m))
        return {
            "--w_alpha must be >= 0": self.w_alpha >= 0,
            "--w_beta must be >= 0": self.w_beta >= 0,
            "--w_gamma must be >= 0": self.w_gamma >= 0,
            "--warmup_ee_epochs must be >= 0": self.warmup_ee_epochs >= 0,
            "--ee_epochs must be >= 0": self.ee_epochs >= 0,
            f"--support_set needs --method {confident}": not self.support_set or needs_confidence(self.method),
            "--w_gamma weighs the support-set term: it needs --support_set": self.w_gamma == 0 or self.support_set,
        }

    def validate(self) -> EETrainConfig:
        """`self`, after every check passed (a `UsageError` naming the flag otherwise)."""
        EE_LOSSES.entry(self.method)  # an unknown method is a `UsageError` listing the choices
        failed = [message for message, ok in self.checks().items() if not ok]
        if failed:
            raise UsageError(failed[0])
        return self


def _confident_methods() -> str:
    """The training methods with confidence heads, as a flag value list (`bernulli`)."""
    return " or ".join(m for m in EE_LOSSES.names(aliases=False) if needs_confidence(m))


EE_HELP = {
    "method": f"early-exit training method ({', '.join(EE_LOSSES.names(aliases=False))}); "
    f"{_confident_methods()} trains confidence heads and exits by the cumulative policy, the others by the "
    "softmax margin",
    "support_set": "pull the exits' confidences towards their per-class accuracy on a support set",
    "tune_epsilon": "choose the exit thresholds on the validation split (else the genome's, where it has them)",
    "w_alpha": "weight of the classification term (bernulli)",
    "w_beta": "weight of the MACs term max(0, avg_macs - mmax) / |macs - mmax| (bernulli)",
    "w_gamma": "weight of the support-set term (bernulli, with --support_set)",
    "warmup_ee_epochs": "early-exit training epochs of the heads alone",
    "ee_epochs": "early-exit training epochs after the warm-up (the backbone too with --train_backbone)",
    "train_backbone": "early-exit training also trains the backbone (else the heads alone)",
}
"""The help of `EETrainConfig`'s flags, for every command line that nests it."""


@dataclass(frozen=True)
class EENetTrainConfig(NetTrainConfig):
    """A `NetTrainConfig` for an early-exit network: how its exits train (`ee`) and their budget.

    `epochs` is derived, `ee.epochs` (warm-up plus early-exit epochs), and has no flag. `search_space` None means the
    early-exit space named by the subnet's exit key. `mmax` (millions of MACs per input, on average) bounds the
    thresholds chosen on validation and drives bernulli's energy term; `top1min` is the least validation top-1
    (percent) the threshold repair may fall to.
    """

    epochs: int = field(init=False, default=0)
    search_space: str | None = None
    ee: EETrainConfig = field(default_factory=EETrainConfig)
    mmax: float | None = None
    top1min: float | None = None

    # `epochs` follows from the early-exit epochs, which are compared themselves.
    RESUMABLE_CHANGES = (*NetTrainConfig.RESUMABLE_CHANGES, "epochs")

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", self.ee.epochs)

    def checks(self) -> dict[str, bool]:
        """The early-exit checks first (they name the epoch flags `epochs` derives from), then the others."""
        return {
            **self.ee.checks(),
            **super().checks(),
            "--mmax must be > 0": self.mmax is None or self.mmax > 0,
            "--top1min must lie in [0, 100]": self.top1min is None or 0 <= self.top1min <= 100,
            "--eval_robust and --ood_eval measure single-exit networks (train.py), not early-exit ones": not (
                self.robust.measures
            ),
        }

    def validate(self) -> EENetTrainConfig:
        """`self`, after every check passed (a `UsageError` naming the flag otherwise; an unknown method first)."""
        EE_LOSSES.entry(self.ee.method)
        super().validate()
        return self
