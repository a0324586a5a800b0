"""Choosing architectures from a finished search: the front to choose from and one chooser per `--prefer` kind.

Every objective is minimised (top-1 as error, `100 − top1`). `create_chooser(prefer, objective)` reads `--prefer`:

- `trade-off`: the knees of the front, found by pymoo's `HighTradeoffPoints` on the front normalised to [0, 1]
  per objective, most balanced first (smallest largest normalised objective, i.e. the ASF from the ideal point).
  `HighTradeoffPoints` finds a knee as an outlier among the points' trade-offs, which needs at least three
  distinct points; a smaller front (or one without an outlier, e.g. a straight line) has no knee, and the most
  balanced point stands in for one. The rest of the `n` are spread along the front, farthest from those chosen
  first (`select_spread`). With one objective there is no trade-off: the `n` most accurate, said in a log line.
- an objective name (`top1`, `macs`, `params`, ...): the `n` best members on that objective.
- objective#target pairs joined by `+` (`top1#80+macs#150`): the `n` members with the smallest achievement
  scalarising function (pymoo's `ASF`, equal weights) from that target, on objectives normalised to [0, 1] by the
  front's range; the first is where the diagonal from the target meets the front. A target is given as the number
  is reported in `net.stats` (top-1 as accuracy in percent, costs in millions) and turned into the minimised
  objective by the objective itself (`top1#80` is an error of 20); an objective computed from several numbers
  (`tiny_ml`) takes its target as its value. The string must give a target for every objective of the search
  (so that the choice trades them off) and may add others; with one objective the ASF simply ranks by it.

Ties go to the more accurate network, then to the earlier evaluation, so every choice is deterministic.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from pymoo.decomposition.asf import ASF

from search.archive import Entry
from search.objectives import Constraint, Objective, feasible, feasible_front, objective_matrix
from search.pareto import select_spread
from search_space.base import SearchSpace
from search_space.ofa_mbv3_ee import EarlyExitSpace
from utils.errors import UsageError

with warnings.catch_warnings():  # pymoo imports scipy's deprecated `scipy.spatial.ckdtree` here
    warnings.simplefilter("ignore", DeprecationWarning)
    from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

__all__ = [
    "BestOn",
    "Chooser",
    "Front",
    "Preference",
    "TradeOff",
    "build_front",
    "choose",
    "create_chooser",
    "with_exits",
]

log = logging.getLogger(__name__)

ObjectiveFactory = Callable[[str], Objective]


@contextmanager
def _recorded() -> Iterator[None]:
    """Turn an objective's or constraint's complaint about a missing number into a `UsageError`."""
    try:
        yield
    except ValueError as err:
        raise UsageError(f"the networks of this search do not record what is needed: {err}") from None


@dataclass(frozen=True)
class Front:
    """The networks to choose from, with the objectives of the search (top-1 error first).

    After a multi-objective search these are its feasible Pareto front; after a single-objective one, where the
    front is just the most accurate network, every feasible network, most accurate first.
    """

    entries: list[Entry]
    objectives: list[Objective]

    def __len__(self) -> int:
        return len(self.entries)

    def values(self, objectives: Sequence[Objective] | None = None) -> np.ndarray:
        """`[n, n_obj]` values (minimised) of `objectives`, by default the search's; a missing number: `UsageError`."""
        with _recorded():
            return objective_matrix(
                [e.stats for e in self.entries], self.objectives if objectives is None else objectives
            )

    def ranked(self, *keys: np.ndarray) -> list[int]:
        """Member indices ordered by `keys` (first is primary), then by accuracy, then evaluation order."""
        error = self.values()[:, 0]
        order = np.lexsort((np.arange(len(self)), error, *reversed(keys)))
        return [int(i) for i in order]


def build_front(entries: Sequence[Entry], objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> Front:
    """The `Front` of `entries` under a search's objectives and constraints; none feasible is a `UsageError`."""
    entries = list(entries)
    records = [e.stats for e in entries]
    with _recorded():
        if len(objectives) > 1:
            rows = [int(i) for i in feasible_front(records, objectives, constraints)]
        else:
            rows = [i for i, r in enumerate(records) if feasible(r, constraints)]
    if not rows:
        raise UsageError(f"none of the {len(entries)} networks to choose from satisfies the search's constraints")
    front = Front([entries[i] for i in rows], list(objectives))
    return front if len(objectives) > 1 else Front([front.entries[i] for i in front.ranked()], front.objectives)


def with_exits(entries: Sequence[Entry], n_exits: int, space: SearchSpace) -> list[Entry]:
    """The networks with `n_exits` early exits (the final classifier not counted); none is a `UsageError`."""
    if not isinstance(space, EarlyExitSpace):
        raise UsageError(f"--n_exits: this search has no early-exit networks (--search_space {space.name})")
    counts = [len(space.exit_stages(e.arch)) for e in entries]
    kept = [e for e, c in zip(entries, counts, strict=True) if c == n_exits]
    if not kept:
        raise UsageError(f"--n_exits {n_exits}: no network has {n_exits} early exits (they have {sorted(set(counts))})")
    return kept


def _normalised(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`F` mapped to [0, 1] per objective by its min and range (a constant objective maps to 0), min, range."""
    low, span = F.min(axis=0), np.ptp(F, axis=0)
    span = np.where(span > 0, span, 1.0)
    return (F - low) / span, low, span


def _asf(x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The achievement scalarising function of each row of `x` from `target`, equal weights (pymoo's `ASF`).

    Rounded to 12 decimals (the values are of order 1), so that rounding noise does not decide between ties.
    """
    values = ASF().do(x, np.ones(x.shape[1]), utopian_point=target)
    return np.round(np.asarray(values, dtype=float).reshape(len(x)), 12)


def _knees(x: np.ndarray) -> set[int]:
    """Rows of the normalised front `x` that pymoo's `HighTradeoffPoints` finds (none under 3 distinct points)."""
    if len(np.unique(x, axis=0)) < 3:
        return set()
    # HighTradeoffPoints switches every warning off for good (and divides 0 by 0 on equal points): contain both
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        found = HighTradeoffPoints().do(x)
    return set() if found is None else {int(i) for i in found}


class Chooser(ABC):
    """Ranks the members of a `Front` for one `--prefer`; `label` names its folders, `net-{label}_{rank}`."""

    label: str

    @abstractmethod
    def choose(self, front: Front, n: int) -> list[int]:
        """Indices of `n` distinct members (`1 <= n <= len(front)`), best first."""


@dataclass(frozen=True)
class BestOn(Chooser):
    """The members best on one objective."""

    objective: Objective

    @property
    def label(self) -> str:  # type: ignore[override]
        """The objective's name."""
        return self.objective.name

    def choose(self, front: Front, n: int) -> list[int]:
        """The `n` members with the smallest values of the objective."""
        return front.ranked(front.values([self.objective])[:, 0])[:n]


class TradeOff(Chooser):
    """The knees of the normalised front, most balanced first, then members spread along the front."""

    label = "trade-off"

    def choose(self, front: Front, n: int) -> list[int]:
        """See the module docstring."""
        if len(front.objectives) == 1:
            log.info("a single-objective search has no trade-off: choosing the %d most accurate networks", n)
            return front.ranked()[:n]
        x, _, _ = _normalised(front.values())
        by_balance = front.ranked(_asf(x, np.zeros(x.shape[1])))
        knees = _knees(x)
        first = [i for i in by_balance if i in knees][:n] or by_balance[:1]
        rest = [i for i in range(len(front)) if i not in first]
        spread = select_spread(x[rest], n - len(first), F_anchor=x[first])
        return first + [rest[int(j)] for j in spread]


_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)#([^#+]+)")


@dataclass(frozen=True)
class Preference(Chooser):
    """The members nearest a target point by the achievement scalarising function on normalised objectives."""

    text: str
    targets: tuple[tuple[Objective, float], ...]

    @property
    def label(self) -> str:  # type: ignore[override]
        """The preference string made safe for a folder name (`top1#80+macs#150` → `top1-80-macs-150`)."""
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.text).strip("-.")

    @classmethod
    def parse(cls, text: str, objective: ObjectiveFactory) -> Preference:
        """Read `name#target+name#target...`; bad syntax, an unknown objective or a repeat is a `UsageError`."""
        usage = f"--prefer {text!r}: expected objective#target pairs joined by '+', e.g. top1#80+macs#150"
        targets: list[tuple[Objective, float]] = []
        for pair in text.split("+"):
            match = _PAIR.fullmatch(pair.strip())
            if match is None:
                raise UsageError(f"{usage}; {pair!r} is not one")
            name, value = match.groups()
            try:
                number = float(value)
            except ValueError:
                raise UsageError(f"{usage}; target {value!r} of {name} is not a number") from None
            if not math.isfinite(number):
                raise UsageError(f"{usage}; target of {name} must be finite, got {value!r}")
            if any(o.name == name for o, _ in targets):
                raise UsageError(f"{usage}; {name} is given twice")
            try:
                target = objective(name)
            except UsageError as err:
                raise UsageError(f"--prefer {text!r}: {err}") from None
            targets.append((target, _minimised(target, number)))
        return cls(text, tuple(targets))

    def choose(self, front: Front, n: int) -> list[int]:
        """The `n` members with the smallest ASF from the target (ties: smallest summed gap to it)."""
        named = {o.name for o, _ in self.targets}
        missing = [o.name for o in front.objectives if o.name not in named]
        if missing:
            raise UsageError(
                f"--prefer {self.text!r} gives no target for {', '.join(missing)}: give one for every objective of"
                f" the search ({', '.join(o.name for o in front.objectives)})"
            )
        x, low, span = _normalised(front.values([o for o, _ in self.targets]))
        target = (np.array([t for _, t in self.targets], dtype=float) - low) / span
        return front.ranked(_asf(x, target), np.round((x - target).sum(axis=1), 12))[:n]


def _minimised(objective: Objective, value: float) -> float:
    """A target given as `net.stats` reports the number, as the value of the (minimised) objective."""
    if objective.needs == (objective.name,):
        return objective.value({objective.name: value})
    return value


def create_chooser(prefer: str, objective: ObjectiveFactory) -> Chooser:
    """The chooser for `--prefer`: `trade-off`, an objective name, or objective#target pairs.

    `objective` builds an objective by name as the search defines it. An unknown name or bad syntax is a
    `UsageError`.
    """
    if prefer == TradeOff.label:
        return TradeOff()
    if "#" in prefer:
        return Preference.parse(prefer, objective)
    try:
        return BestOn(objective(prefer))
    except UsageError as err:
        raise UsageError(
            f"--prefer {prefer!r}: {err}; or trade-off, or objective#target pairs such as top1#80+macs#150"
        ) from None


def choose(front: Front, chooser: Chooser, n: int) -> list[int]:
    """`chooser`'s `n` members of `front`, best first; `n` outside 1..len(front) is a `UsageError`."""
    if n < 1:
        raise UsageError(f"-n must be >= 1, got {n}")
    if n > len(front):
        raise UsageError(f"-n {n} is larger than the front to choose from ({len(front)} networks)")
    return chooser.choose(front, n)
