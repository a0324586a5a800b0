"""Evaluation of architectures: cost metrics, evaluators and the backends that run them."""

from evaluator import supernet as _supernet  # noqa: F401  (registers the evaluator)
from evaluator.backends import Backend, EvaluatorSpec, create_backend, list_backends
from evaluator.base import EvalResult, Evaluator, write_result
from evaluator.registry import create_evaluator, list_evaluators, register_evaluator

__all__ = [
    "Backend",
    "EvalResult",
    "Evaluator",
    "EvaluatorSpec",
    "create_backend",
    "create_evaluator",
    "list_backends",
    "list_evaluators",
    "register_evaluator",
    "write_result",
]
