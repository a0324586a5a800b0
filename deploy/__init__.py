"""Deployment: exporting a trained network to a file format, through a registry of exporters keyed by format.

Importing the package registers every exporter: `onnx`.
"""

from deploy import onnx as _onnx  # noqa: F401  (registration)
from deploy.registry import export_model, list_formats, register_exporter

__all__ = ["export_model", "list_formats", "register_exporter"]
