"""A tiny variant of the `darts` space, for tests: DARTS searches and trains its networks in seconds on a CPU."""

from typing import ClassVar

from search_space.darts import DartsSpace


class TinyDartsSpace(DartsSpace):
    """At most one normal cell per stage, two nodes per cell, 4 first-stage channels."""

    name = "tiny_darts"
    stage_choices: ClassVar[tuple[int, ...]] = (0, 1)
    node_choices: ClassVar[tuple[int, ...]] = (2,)
    channel_choices: ClassVar[tuple[int, ...]] = (4,)
