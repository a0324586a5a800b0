"""The four MLPerf Tiny reference models (inference benchmark v1.x), in PyTorch.

- `dscnn`: DS-CNN (small) for keyword spotting on 49×10 MFCC features, 12 classes.
- `mobilenet_v1`: MobileNetV1 with width 0.25 for visual wake words on 96×96×3 images, 2 classes.
- `resnet8`: ResNet-8 for CIFAR-10 on 32×32×3 images, 10 classes.
- `autoencoder`: the fully-connected autoencoder for anomaly detection on 640 inputs (5 frames × 128 mel bins).

Each model records its input shape (without batch) as `input_shape`. TensorFlow's `same` padding is reproduced
with explicit paddings (symmetric where TensorFlow's is, so the shapes match the references).
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from utils.registry import Registry

TINY_MODELS = Registry[nn.Module]("MLPerf Tiny model")
"""Metadata: `task`, and the reference `macs` and `params` of the conv / linear layers at the default arguments."""


def _conv_bn_relu(
    c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int, groups: int = 1, padding: object = None
) -> nn.Sequential:
    padding = kernel // 2 if padding is None else padding
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


def _depthwise_separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn_relu(c_in, c_in, 3, stride, groups=c_in), _conv_bn_relu(c_in, c_out, 1, 1))


class DSCNN(nn.Module):
    """DS-CNN for keyword spotting: a 10×4 stride-2 convolution, four depthwise-separable blocks, pooling, linear."""

    def __init__(self, n_classes: int = 12, width: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.input_shape = (1, 49, 10)
        self.stem = _conv_bn_relu(1, width, (10, 4), 2, padding=(5, 1))  # 25×5 outputs, as TensorFlow's
        self.blocks = nn.Sequential(*[_depthwise_separable(width, width, 1) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of `x` [N, 1, 49, 10]."""
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


class MobileNetV1(nn.Module):
    """MobileNetV1 (width 0.25 by default) for visual wake words."""

    PLAN = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))

    def __init__(self, n_classes: int = 2, width: float = 0.25, resolution: int = 96) -> None:
        super().__init__()
        self.input_shape = (3, resolution, resolution)
        channels = int(32 * width)
        layers = [_conv_bn_relu(3, channels, 3, 2)]
        for c_out, stride in self.PLAN:
            layers.append(_depthwise_separable(channels, int(c_out * width), stride))
            channels = int(c_out * width)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of `x` [N, 3, 96, 96]."""
        return self.classifier(self.pool(self.features(x)).flatten(1))


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with batch norm, and a 1×1 convolution on the shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """`relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`."""
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.shortcut(x))


class ResNet8(nn.Module):
    """ResNet-8 for image classification: a 3×3 stem and three residual stacks of 16, 32 and 64 channels."""

    def __init__(self, n_classes: int = 10, in_channels: int = 3, resolution: int = 32) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.stacks = nn.Sequential(ResidualBlock(16, 16, 1), ResidualBlock(16, 32, 2), ResidualBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of `x` [N, C, H, W]."""
        return self.classifier(self.pool(self.stacks(self.stem(x))).flatten(1))


class AutoEncoder(nn.Module):
    """The fully-connected autoencoder for anomaly detection: 640 → 4×128 → 8 → 4×128 → 640."""

    def __init__(self, n_inputs: int = 640, hidden: int = 128, bottleneck: int = 8, depth: int = 4) -> None:
        super().__init__()
        self.input_shape = (n_inputs,)
        sizes = [n_inputs, *[hidden] * depth, bottleneck, *[hidden] * depth]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.output = nn.Linear(hidden, n_inputs)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of `x` [N, 640]."""
        return self.output(self.layers(x))


TINY_MODELS.register("dscnn", task="keyword spotting", macs=2_656_768, params=22_028)(DSCNN)
TINY_MODELS.register("mobilenet_v1", task="visual wake words", macs=7_489_664, params=208_114)(MobileNetV1)
TINY_MODELS.register("resnet8", task="image classification", macs=12_501_632, params=77_466)(ResNet8)
TINY_MODELS.register("autoencoder", task="anomaly detection", macs=264_192, params=265_864)(AutoEncoder)


def create_tiny_model(name: str, **kwargs: object) -> nn.Module:
    """The MLPerf Tiny model registered as `name` (`dscnn`, `mobilenet_v1`, `resnet8`, `autoencoder`)."""
    return TINY_MODELS.create(name, **kwargs)


def list_tiny_models() -> list[str]:
    """The registered names."""
    return TINY_MODELS.names()
