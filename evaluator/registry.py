"""Registry of evaluators; `create_evaluator(name, **kw)` is the one way to build one."""

from __future__ import annotations

from evaluator.base import Evaluator
from utils.registry import Registry

EVALUATORS: Registry[Evaluator] = Registry("evaluator")
register_evaluator = EVALUATORS.register


def create_evaluator(name: str, **kwargs: object) -> Evaluator:
    """Build the evaluator registered under `name`."""
    return EVALUATORS.create(name, **kwargs)


def list_evaluators(aliases: bool = True) -> list[str]:
    """Names of every registered evaluator (aliases included unless `aliases=False`)."""
    return EVALUATORS.names(aliases)
