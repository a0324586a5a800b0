"""Reference networks for the differentiable engines: the four MLPerf Tiny models."""

from dnas.models.mlperf_tiny import TINY_MODELS, create_tiny_model, list_tiny_models

__all__ = ["TINY_MODELS", "create_tiny_model", "list_tiny_models"]
