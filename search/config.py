"""`SearchConfig`: every setting of a search, built from the command line in one place and stored with results."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from acc_predictor import PREDICTORS
from data import DATASETS
from dnas.inner import INNER_HELP, InnerConfig
from early_exit.config import EE_HELP, EETrainConfig
from evaluator import BACKENDS, EVALUATORS
from hw.metrics import COST_KEYS
from robustness.config import ROBUST_HELP, RobustConfig
from search.algorithms import ALGORITHMS
from search.objectives import (
    CONSTRAINTS,
    OBJECTIVES,
    Constraint,
    Objective,
    build_constraints,
    create_objective,
    list_constraints,
    measured_keys,
    objective_parameters,
)
from search_space import SEARCH_SPACES, SearchSpace, create_search_space
from training.config import OPTIM_HELP, SharpnessConfig, first_failure
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, dataclass_from_record, flat_record
from utils.errors import UsageError


@dataclass(frozen=True)
class SearchConfig:
    """The settings of one search. Flag names follow upstream CNAS/MSuNAS."""

    save: str = ""
    resume: str | None = None
    seed: int = 0
    algorithm: str = "msunas"
    first_obj: str = "top1"
    sec_obj: str | None = "macs"
    iterations: int = 15
    n_doe: int = 100
    n_iter: int = 8
    patience: int | None = None
    predictor: str = "gp"
    sec_predictor: str | None = None
    pop_size: int = 40
    n_gen: int = 20
    dataset: str = "digits"
    data: str | None = None
    n_classes: int | None = None
    vld_size: int | None = None
    supernet_path: str | None = None
    width_mult: float = 1.0
    search_space: str = "ofa_mbv3"
    evaluator: str | None = None
    lr: int = 32
    ur: int = 32
    rstep: int = 4
    pmax: float | None = None
    mmax: float | None = None
    amax: float | None = None
    top1min: float | None = None
    wp: float = 1.0
    wm: float = 1 / 40
    wa: float = 1.0
    penalty: float = 1e10
    systolic_array: str = "16x16"
    n_epochs: int = 0
    sharpness: SharpnessConfig = field(default_factory=SharpnessConfig)
    n_bn_cal: int = 500
    save_ckpt: bool = False
    backend: str = "sequential"
    n_gpus: int | None = None
    gpu: float = 1.0
    n_workers: int = 2
    cpus_per_eval: int = 1
    max_retries: int = 1
    eval_timeout: float | None = None
    ray_address: str | None = None
    device: str = "auto"
    ee: EETrainConfig = field(default_factory=EETrainConfig)
    alpha: float = 0.5
    robust: RobustConfig = field(default_factory=RobustConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)

    def validate(self) -> SearchConfig:
        """`self` after checking every value a user may get wrong (one `UsageError` naming the flag)."""
        algorithm = ALGORITHMS.get(self.algorithm)
        needed = max(algorithm.min_points(p) for p in (self.predictor, self.sec_predictor or self.predictor))
        checks = [
            (self.lr <= self.ur, f"--lr {self.lr} is larger than --ur {self.ur}"),
            (self.iterations >= 0, "--iterations must be >= 0"),
            (self.n_doe >= 2, "--n_doe must be >= 2 (the smallest and the largest architecture are always in it)"),
            (
                self.n_doe >= needed,
                f"--n_doe {self.n_doe} is too small: --algorithm {self.algorithm} with --predictor {self.predictor} "
                f"needs at least {needed} evaluated architectures; use --n_doe {needed} or more",
            ),
            (self.n_iter >= 1, "--n_iter must be >= 1"),
            (self.patience is None or self.patience >= 1, "--patience must be >= 1"),
            (self.pop_size >= 2 and self.n_gen >= 1, "--pop_size must be >= 2 and --n_gen >= 1"),
            (self.n_epochs >= 0 and self.n_bn_cal >= 1, "--n_epochs must be >= 0 and --n_bn_cal >= 1"),
            (self.penalty >= 0, "--penalty must be >= 0"),
            (self.cpus_per_eval >= 1, f"--cpus_per_eval must be >= 1, got {self.cpus_per_eval}"),
            (self.max_retries >= 0, f"--max_retries must be >= 0, got {self.max_retries}"),
            (
                self.eval_timeout is None or self.eval_timeout > 0,
                f"--eval_timeout must be > 0 seconds (none: no timeout), got {self.eval_timeout}",
            ),
            (
                re.fullmatch(r"[1-9]\d*x[1-9]\d*", self.systolic_array) is not None,
                f"--systolic_array must be ROWSxCOLS with positive integers, like 16x16; got {self.systolic_array!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.first_obj not in FIRST_OBJECTIVES:
            raise UsageError(f"--first_obj must be one of {', '.join(FIRST_OBJECTIVES)}, got {self.first_obj!r}")
        first_failure(self.sharpness.checks())
        self.ee.validate()
        self.robust.validate()
        self.inner.validate()
        if self.inner.enabled and not EVALUATORS.get(self.evaluator_name).refines:
            refiners = [e.name for e in EVALUATORS.entries() if EVALUATORS.get(e.name).refines]
            raise UsageError(
                f"--inner_search {self.inner.inner_search} refines candidates of --evaluator "
                f"{' or '.join(refiners)}, not of {self.evaluator_name} (the evaluator of --search_space "
                f"{self.search_space})"
            )
        for name in self.objectives:
            self.objective(name)  # each objective checks its own settings (--alpha of top1_robust)
        self.check_measured()
        return self

    def check_measured(self) -> None:
        """A `UsageError` when an objective or constraint needs a number the evaluator does not measure."""
        evaluator = EVALUATORS.get(self.evaluator_name)
        measured = evaluator.measured(self)
        for key in measured_keys([self.objective(name) for name in self.objectives], self.constraints()):
            if key in measured:
                continue
            if key in evaluator.switches:
                raise UsageError(
                    f"--first_obj {self.first_obj} --sec_obj {self.sec_obj} needs {key}, which the "
                    f"{self.evaluator_name} evaluator measures only with {evaluator.switches[key]}"
                )
            by = [e.name for e in EVALUATORS.entries() if key in EVALUATORS.get(e.name).measures]
            spaces = [e.name for e in SEARCH_SPACES.entries() if SEARCH_SPACES.get(e.name).default_evaluator in by]
            raise UsageError(
                f"{key} is measured only by --evaluator {' or '.join(by) or '(none)'}, not by "
                f"{self.evaluator_name}, the evaluator of --search_space {self.search_space}; search it in "
                f"{' or '.join(spaces) or 'a space whose evaluator measures it'}"
            )

    @property
    def _measured_costs(self) -> set[str]:
        """Cost keys the evaluator measures on the network it builds, instead of the space's cost function."""
        return set(EVALUATORS.get(self.evaluator_name).measured(self)) & set(COST_KEYS)

    @property
    def array(self) -> tuple[int, int]:
        """`--systolic_array` as `(s1, s2)`: the array the `latency` objective is counted on."""
        rows, cols = self.systolic_array.split("x")
        return int(rows), int(cols)

    @property
    def objectives(self) -> tuple[str, ...]:
        """Objective names: the first (`top1` as error, or `top1_robust`) and the second when there is one."""
        return (self.first_obj,) if self.sec_obj is None else (self.first_obj, self.sec_obj)

    def objective(self, name: str) -> Objective:
        """The objective `name` with this search's settings of its parameters (e.g. `tiny_ml`'s bounds and weights).

        An objective that needs a cost the evaluator measures (the refined network's with `--inner_search`, the
        found network's with the `darts` evaluator) is not cheap: it is predicted, not computed from the genome.

        Parameters a search fits to its archive (`top1_robust`'s `alpha_norm`) are left to `Objective.fit`.
        """
        settings = {p: getattr(self, p) for p in objective_parameters(name) if hasattr(self, p)}
        objective = create_objective(name, **settings)
        return replace(objective, cheap=False) if set(objective.needs) & self._measured_costs else objective

    def constraints(self) -> list[Constraint]:
        """The constraints whose bound this search gives (one flag per registered constraint)."""
        objectives = [self.objective(name) for name in self.objectives]
        constraints = build_constraints(objectives, **{name: getattr(self, name) for name in list_constraints()})
        return [replace(c, cheap=False) if c.key in self._measured_costs else c for c in constraints]

    @property
    def evaluator_name(self) -> str:
        """`--evaluator`, else the search space's default evaluator."""
        return self.evaluator or self.space().default_evaluator

    def space(self) -> SearchSpace:
        """The search space, over this search's resolutions."""
        return create_search_space(self.search_space, lr=self.lr, ur=self.ur, rstep=self.rstep)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly flat record (one key per flag), stored in every `iter_{k}.stats`."""
        return flat_record(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> SearchConfig:
        """The configuration `to_dict` recorded; keys it does not know are ignored, missing ones take defaults."""
        return dataclass_from_record(cls, record)

    # Settings that may differ when a search is resumed (where it is saved, how it is run), all others must match.
    RESUMABLE_CHANGES = (
        "resume",
        "iterations",
        "patience",
        "backend",
        "n_gpus",
        "gpu",
        "n_workers",
        "device",
        "ray_address",
        "cpus_per_eval",
        "max_retries",
        "eval_timeout",
    )

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Flags whose values differ from a stored configuration, ignoring those a resume may change."""
        mine = self.to_dict()
        return sorted(k for k in mine if k not in self.RESUMABLE_CHANGES and other.get(k, mine[k]) != mine[k])


FIRST_OBJECTIVES = ("top1", "top1_robust")
"""The choices of `--first_obj`: the accuracy-based objectives."""

HELP = {  # flags whose choices live in a registry get their help from it (`help_texts`)
    "save": "results folder (default: results/search-<dataset>-<time>)",
    "resume": "continue from save/iter_{k}.stats",
    "seed": "fixes every random source of the search (the validation split is the supernet's, from its card)",
    "iterations": "search iterations after the initial design",
    "n_doe": "initial design size (smallest and largest included)",
    "n_iter": "candidates evaluated per iteration",
    "patience": "stop after this many iterations without hypervolume gain",
    "pop_size": "NSGA-II population on the surrogate",
    "n_gen": "NSGA-II generations on the surrogate",
    "data": "dataset folder",
    "n_classes": "number of classes (checked against the dataset)",
    "vld_size": "validation images carved from the training set (default: the supernet card's split)",
    "supernet_path": "supernet weights (default for digits: trained once and cached)",
    "width_mult": "supernet width multiplier",
    "lr": "minimum input resolution",
    "ur": "maximum input resolution",
    "rstep": "resolution step",
    "wp": "tiny_ml weight of params",
    "wm": "tiny_ml weight of MACs",
    "wa": "tiny_ml weight of activations",
    "penalty": "tiny_ml penalty factor",
    "systolic_array": "systolic array (s1xs2) the latency objective counts cycles on (hw/systolic.py)",
    "n_epochs": "fine-tuning epochs per evaluation (0: inherited weights only)",
    **{flag: f"{OPTIM_HELP[flag]} (of the --n_epochs fine-tuning)" for flag in ("optim", "rho", "adaptive")},
    "n_bn_cal": "training images for batch-norm recalibration",
    "save_ckpt": "write ckpt.pth for every evaluated architecture",
    "n_gpus": "GPUs to spread evaluations over (default: all visible)",
    "gpu": "GPUs per evaluation (process: exactly 1; ray: fractions share a GPU)",
    "n_workers": "CPU workers of the process and ray backends when there is no GPU",
    "cpus_per_eval": "CPUs each evaluation reserves (ray backend)",
    "max_retries": "times an evaluation whose worker died or that raised is tried again before it is recorded as "
    "failed (ray backend)",
    "eval_timeout": "seconds after which an evaluation is cancelled and recorded as failed (ray backend; none: no "
    "limit)",
    "ray_address": "Ray cluster (HOST:PORT or ray://HOST:PORT) of the ray backend; none: RAY_ADDRESS, else a local "
    "Ray started for the search",
    "device": "auto, cpu or cuda",
    **{flag: f"{text} (evaluator ee)" for flag, text in EE_HELP.items()},
    "first_obj": f"first objective: {' or '.join(FIRST_OBJECTIVES)} (FlatNAS: accuracy and flatness, needs "
    "--eval_robust)",
    "alpha": "weight of the top-1 error in top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * robustness",
    **ROBUST_HELP,
    **INNER_HELP,
}


def help_texts() -> dict[str, str]:
    """The help of every flag: `HELP` plus the choices of each registry-backed flag, read from its registry."""
    second = ", ".join(e.name for e in OBJECTIVES.entries() if e.name != "top1")
    texts = {
        **HELP,
        "algorithm": f"search algorithm. {ALGORITHMS.describe()}",
        "sec_obj": f"second objective, against top-1 ({second}); none: top-1 alone",
        "predictor": f"surrogate accuracy predictor. {PREDICTORS.describe()}",
        "sec_predictor": "surrogate of a second objective only evaluations measure (avg_macs); none: --predictor",
        "dataset": f"dataset. {DATASETS.describe()}",
        "search_space": f"search space. {SEARCH_SPACES.describe()}",
        "evaluator": f"evaluator (none: the search space's default). {EVALUATORS.describe()}",
        "backend": f"how evaluations run. {BACKENDS.describe()}",
        **{e.name: f"{e.help}: a constraint (and a tiny_ml bound)" for e in CONSTRAINTS.entries()},
    }
    return {flag: text.replace("%", "%%") for flag, text in texts.items()}  # argparse formats help with %


def build_parser(prog: str = "msunas.py") -> argparse.ArgumentParser:
    """The command line, one flag per `SearchConfig` field."""
    parser = ArgumentParser(prog=prog, description="MSuNAS: surrogate-assisted multi-objective NAS.")
    return add_dataclass_flags(parser, SearchConfig, help_texts())


def parse_config(argv: Sequence[str] | None = None) -> SearchConfig:
    """Parse the command line into a validated `SearchConfig` (bad values exit 2 through argparse/UsageError)."""
    args = build_parser().parse_args(argv)
    save = args.save or f"results/search-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return dataclass_from_args(SearchConfig, args, save=save).validate()
