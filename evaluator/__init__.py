"""Evaluation of architectures: `EvalResult`, the registered evaluators and the backends that run them.

Every module of the package is imported here, so an evaluator or a backend registers itself by existing.
"""

from evaluator.backends import BACKENDS, Backend, EvaluatorSpec, create_backend, list_backends
from evaluator.base import EvalResult, Evaluator, read_result, write_result
from evaluator.registry import EVALUATORS, create_evaluator, list_evaluators, register_evaluator
from utils.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = [
    "BACKENDS",
    "EVALUATORS",
    "Backend",
    "EvalResult",
    "Evaluator",
    "EvaluatorSpec",
    "create_backend",
    "create_evaluator",
    "list_backends",
    "list_evaluators",
    "read_result",
    "register_evaluator",
    "write_result",
]
