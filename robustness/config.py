"""`RobustConfig`: which robustness numbers an evaluation measures, as flags shared by msunas.py and train.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from data.cifar_c import CORRUPTIONS
from robustness.corruptions import check_corruption
from robustness.flatness import FLATNESS_HELP, FlatnessConfig
from utils.errors import UsageError

ROBUST_HELP = {
    "eval_robust": "also measure the flatness (robustness) of every network: its mean top-1 change under weight noise",
    **FLATNESS_HELP,
    "ood_eval": "also measure mCE, the mean top-1 error over corrupted images (15 corruptions x 5 severities)",
    "corruptions": f"corruptions of --ood_eval, comma-separated, or all ({', '.join(CORRUPTIONS)})",
}
"""The help of `RobustConfig`'s flags, for every command line that nests it."""

OOD_FILES_HELP = {
    "ood_data": "folder of corrupted test images, <corruption>/<severity>/<class>/ (ImageNet-C layout); none: the "
    "Hendrycks .npy files when the data root has them, else corruptions generated from the test split",
    "ood_reference": "net.stats of a reference network's OOD evaluation: also report the normalised mCE against it",
}
"""The help of the OOD file flags of `train.py` and `robustness.evaluate` (used with `--ood_eval`)."""

ALL = "all"


@dataclass(frozen=True)
class RobustConfig:
    """The robustness measurements asked for: flatness (`eval_robust`, FlatNAS) and corruption errors (`ood_eval`)."""

    eval_robust: bool = False
    flatness: FlatnessConfig = field(default_factory=FlatnessConfig)
    ood_eval: bool = False
    corruptions: str = ALL

    def corruption_names(self) -> tuple[str, ...]:
        """The corruptions of `--ood_eval`, standard order for `all`; an unknown name is a `UsageError`."""
        if self.corruptions == ALL:
            return CORRUPTIONS
        names = tuple(dict.fromkeys(n.strip() for n in self.corruptions.split(",") if n.strip()))
        if not names:
            raise UsageError(
                f"--corruptions {self.corruptions!r} names no corruption; choose among: "
                f"{', '.join(CORRUPTIONS)} (or all)"
            )
        try:
            return tuple(check_corruption(n) for n in names)
        except UsageError as err:
            raise UsageError(f"--corruptions: {err}") from None

    @property
    def measures(self) -> tuple[str, ...]:
        """The record keys these settings add to an evaluation: `robustness` and `mCE`, when asked for."""
        return (*(("robustness",) if self.eval_robust else ()), *(("mCE",) if self.ood_eval else ()))

    def validate(self) -> RobustConfig:
        """`self`, after checking the flatness settings and the corruption names (a one-line `UsageError`)."""
        self.flatness.validate()
        self.corruption_names()
        return self
