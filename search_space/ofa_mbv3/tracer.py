"""Live tensor elements, operation by operation, of a static ofa MobileNetV3: the measured side of `peak_act`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings():  # ofa imports deprecated torchvision/torch helpers
    warnings.simplefilter("ignore")
    from ofa.imagenet_classification.networks import MobileNetV3
    from ofa.utils import MyGlobalAvgPool2d
    from ofa.utils.layers import ConvLayer, IdentityLayer, LinearLayer, MBConvLayer, ResidualBlock


def is_static_ofa_mbv3(model: nn.Module) -> bool:
    """Whether `model` is a static ofa `MobileNetV3` (an extracted subnet, not an elastic supernet)."""
    return isinstance(model, MobileNetV3) and all(
        isinstance(block, ResidualBlock) and isinstance(block.conv, MBConvLayer) for block in model.blocks
    )


class OFAMobileNetV3LiveTracer:
    """Measures live tensor elements, operation by operation, during a forward pass of a static ofa MobileNetV3.

    Forward hooks on the ofa layer modules (`ConvLayer`, the `inverted_bottleneck` / `depth_conv` /
    `point_linear` Sequentials of each `MBConvLayer`, `SEModule`, `MyGlobalAvgPool2d`, `LinearLayer`) and
    pre/post hooks on each `ResidualBlock` (whose identity shortcut holds the block input) record the tensors
    each operation actually reads and writes. Within a context, run one forward; `events` then lists
    `(operation name, live elements)` in execution order (the granularity of the module docstring, with the
    same names as `CostModel.layers`) and `peak` their maximum. Distinct tensors are counted once, by identity.
    """

    def __init__(self, model: nn.Module) -> None:
        if not is_static_ofa_mbv3(model):
            raise TypeError(f"{type(model).__name__} is not a static ofa MobileNetV3 (extract a subnet first)")
        for block in model.blocks:
            if block.shortcut is not None and not isinstance(block.shortcut, IdentityLayer):
                raise TypeError(f"unsupported shortcut {type(block.shortcut).__name__}: only identity is traced")
        self.model = model
        self.events: list[tuple[str, int]] = []
        self._held: list[torch.Tensor] = []
        self._dw_input: torch.Tensor | None = None
        self._block_output: torch.Tensor | None = None
        self._handles: list[Any] = []

    @property
    def peak(self) -> int:
        """The largest live element count over the recorded operations."""
        if not self.events:
            raise RuntimeError("no forward pass was traced")
        return max(live for _, live in self.events)

    def __enter__(self) -> OFAMobileNetV3LiveTracer:
        self.events.clear()
        for name, module in self.model.named_modules():
            if isinstance(module, ResidualBlock):
                self._hook_block(name, module)
            elif isinstance(module, MBConvLayer):
                self._hook_mbconv(name, module)
            elif isinstance(module, ConvLayer | LinearLayer | MyGlobalAvgPool2d):
                self._hook_op(name, module)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._held.clear()
        self._dw_input = self._block_output = None

    def _record(self, name: str, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> None:
        alive = {id(t): t.numel() for t in (*inputs, output, *self._held)}
        self.events.append((name, sum(alive.values())))

    def _hook_op(self, name: str, module: nn.Module) -> None:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            self._record(name, inputs[:1], output)

        self._handles.append(module.register_forward_hook(hook))

    def _hook_block(self, name: str, block: ResidualBlock) -> None:
        if block.shortcut is None:
            return

        def pre(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self._held.append(inputs[0])

        def post(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            held = self._held.pop()
            assert self._block_output is not None
            self._record(f"{name}.add", (self._block_output, held), output)

        self._handles.append(block.register_forward_pre_hook(pre))
        self._handles.append(block.register_forward_hook(post))

    def _hook_mbconv(self, name: str, layer: MBConvLayer) -> None:
        if layer.inverted_bottleneck is not None:
            self._hook_op(f"{name}.inverted_bottleneck", layer.inverted_bottleneck)
        depth_conv = layer.depth_conv
        se = depth_conv._modules.get("se")
        if se is None:
            self._hook_op(f"{name}.depth_conv", depth_conv)
        else:
            # depth_conv runs conv+bn+act and then SE: split it at the SE input into two operations.
            def dw_pre(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                self._dw_input = inputs[0]

            def se_pre(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                assert self._dw_input is not None
                self._record(f"{name}.depth_conv", (self._dw_input,), inputs[0])
                self._dw_input = None

            self._handles.append(depth_conv.register_forward_pre_hook(dw_pre))
            self._handles.append(se.register_forward_pre_hook(se_pre))
            self._hook_op(f"{name}.depth_conv.se", se)
        self._hook_op(f"{name}.point_linear", layer.point_linear)

        def out(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            self._block_output = output

        self._handles.append(layer.register_forward_hook(out))
