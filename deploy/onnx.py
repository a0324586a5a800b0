"""ONNX export of an image classifier with a dynamic batch dimension (input `input`, output `logits`).

A model returning several tensors names them in an `output_names` attribute (as `EarlyExitNet.exportable()`
does): each becomes an output of that name, with the batch dimension first.

Uses PyTorch's TorchScript-based exporter (`dynamo=False`): it is built into torch, needs no `onnxscript`, and
exports a static MobileNetV3 subnet in well under a second; its deprecation warning is silenced here. The file is
checked with `onnx.checker` before it is written (atomically). Opset 17 keeps the files loadable by older
runtimes.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from deploy.registry import register_exporter
from utils.io import atomic_write

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@register_exporter("onnx")
def export_onnx(*, model: nn.Module, path: Path, resolution: int) -> Path:
    """Write `model` (in eval mode, on the CPU) as ONNX to `path`; the batch size is left free."""
    outputs = list(getattr(model, "output_names", [OUTPUT_NAME]))
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = torch.zeros(1, 3, resolution, resolution)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        torch.onnx.export(
            cpu_model,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
            opset_version=OPSET,
        )
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    return atomic_write(path, lambda f: f.write(buffer.getvalue()), binary=True)
