"""Evaluation of architectures: cost metrics, evaluators and the backends that run them."""
